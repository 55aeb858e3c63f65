"""The results of a runner batch's tasks, gathered and committed per execution.

:class:`ResultGroups` is the part of :func:`stepflow.runtime.runner_commit.run_tasks`
that runs each task the runner commits itself (alone, or as a member of a group
message under the group's one lease, ``GroupClaim``), gathers the results per
execution and commits each execution's as one event group
(:func:`stepflow.runtime.stepper_commit.apply_events`): at once when the execution's
last task in the batch ends, else :data:`GROUP_WAIT_SECONDS` after its first result.
A member its group's lease no longer covers is handed off (sent on its own); a commit
that does not happen (no time left, a lease ran out, an error) falls back: the results
are recorded on their leases and sent to the transition queue
(see :mod:`stepflow.runtime.runner_commit` for why nothing is lost).
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from stepflow.engine.codec import decode_state
from stepflow.runtime.messages import Message, decode_event
from stepflow.runtime.outcome import TaskDeferredError
from stepflow.runtime.ports import ExecutionRecord
from stepflow.runtime.stepper_commit import apply_events
from stepflow.runtime.task_groups import GroupClaim, task_id
from stepflow.runtime.task_runs import RanTask, TaskLeaseHeldError, TaskRuns

if TYPE_CHECKING:
    from stepflow.runtime.stepper import Stepper

LOG = logging.getLogger(__name__)

GROUP_WAIT_SECONDS = 0.2
"""How long an ended task's result may wait for its execution's other tasks in the batch."""


class _NotCoveredError(Exception):
    """A group member the claim does not cover (``GroupClaim.covers``): handed off."""


class CommitSkippedError(Exception):
    """The runner did not commit a group (no time left, or a lease ran out): fall back."""


class ResultGroups:
    """The results of a batch's tasks, gathered per execution and committed per execution.

    One committer per execution at a time: a result that ends while its execution's
    commit is running waits for the next round of that committer. A result never waits
    for a sibling still running for more than ``wait`` seconds: the execution's last
    task in the batch commits at once, and otherwise a timer commits what has ended
    ``wait`` seconds after the first result did (so a fast task is not held past its
    own ``TimeoutSeconds`` by a slow one; tasks that end together still make one commit).
    """

    def __init__(
        self,
        stepper: Stepper,
        runs: TaskRuns,
        tasks: list[Message],
        has_time: Callable[[], bool] | None,
        wait: float = GROUP_WAIT_SECONDS,
    ) -> None:
        self._stepper = stepper
        self._runs = runs
        self._has_time = has_time
        self._wait = wait
        direct = [m for m in tasks if runs.commits_directly(m)]
        self._order = {m.id: i for i, m in enumerate(direct)}
        self._left = Counter(m.execution_arn for m in direct)
        self._pending: dict[str, list[RanTask]] = {}
        self._busy: set[str] = set()  # executions whose committer is running
        self._timers: list[threading.Timer] = []
        self._repaired: set[str] = set()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self.failures: dict[str, Exception] = {}
        """By message id: a task that ran whose result could be neither committed nor sent."""

    def run(self, message: Message, claim: GroupClaim | None = None) -> None:
        """Run one task (``claim``: a group's member).

        Its result is committed with whatever of its execution's has ended.
        """
        arn = message.execution_arn
        ran: RanTask | None = None
        try:
            if claim is None:
                ran = self._runs.run_unrecorded(message, closed=lambda h: self.closed(arn, h))
            else:
                ran = self._run_member(message, claim)
        except TaskDeferredError as deferred:  # not run: again later, not a failed delivery
            if claim is None:
                self._runs.requeue(message, deferred.seconds)
            else:
                self._hand_off(message, claim, deferred.seconds)
        except _NotCoveredError:  # not started: on its own, under its own lease
            assert claim is not None
            self._hand_off(message, claim, 0.0)
        finally:  # a task that failed to run still counts as ended for its group
            with self._lock:
                if ran is not None:
                    self._pending.setdefault(arn, []).append(ran)
                self._left[arn] -= 1
                last = self._left[arn] == 0
                if not last and ran is not None and len(self._pending[arn]) == 1:
                    timer = threading.Timer(
                        self._wait, contextvars.copy_context().run, (self._flush, arn)
                    )
                    timer.daemon = True
                    self._timers.append(timer)
                    timer.start()
            if last:
                self._flush(arn)

    def _hand_off(self, message: Message, claim: GroupClaim, seconds: float) -> None:
        """Send a group's member on its own, THEN list it done in the group record.

        For a deferred member (again in ``seconds``) or one the claim does not cover.

        A failed send raises (the group message comes back, the member still to run);
        never recorded first, or a send lost after the record would lose the task.
        """
        try:
            self._runs.requeue(message, seconds)
        except Exception:
            claim.stopped(message)
            raise
        try:
            claim.record({task_id(message): None})
        except Exception as exc:  # sent: its own message runs it (a later claim may too)
            claim.stopped(message)
            LOG.warning("%s: a handed-off task was not recorded done: %r", message.id, exc)

    def _run_member(self, message: Message, claim: GroupClaim) -> RanTask | None:
        """A group's member: run under the group's claim, or its recorded result sent again."""
        plan = claim.plan(message)
        if plan == "skip":
            return None
        if plan == "resend":  # a fallback whose send was lost
            self._runs.send_result(message, claim.recorded(message))
            return None
        if not claim.covers(message):  # it could outlive the lease or the invocation
            if claim.can_hand_off():
                raise _NotCoveredError(message.id)
            claim.stopped(message)  # the lease (nearly) ran out: left for the redelivery
            until = claim.lease.until if claim.lease is not None else 0.0
            raise TaskLeaseHeldError(f"{message.id}: the group lease has run out", until)
        try:
            result = self._runs.invoke(message)
        except TaskDeferredError:
            raise
        except Exception:
            claim.stopped(message)  # not done: a later claim runs it again
            raise
        return RanTask(message, result, None, claim)

    def drain(self) -> None:
        """Wait until every execution's committer has finished (every task has ended)."""
        with self._lock:
            timers, self._timers = self._timers, []
        for timer in timers:  # every task ended: the last one of each execution flushed it
            timer.cancel()
        with self._idle:
            self._idle.wait_for(lambda: not self._busy)

    def _flush(self, arn: str) -> None:
        """Commit what has ended of ``arn``'s results, in rounds, unless a committer runs."""
        with self._lock:
            if arn in self._busy:
                return  # the running committer takes what is pending in its next round
            self._busy.add(arn)
        try:
            while True:
                with self._idle:
                    group = self._pending.pop(arn, [])
                    if not group:
                        # Under the same lock as the empty pop: a result added after it finds
                        # no committer and flushes itself (else it would be left pending).
                        self._busy.discard(arn)
                        self._idle.notify_all()
                        return
                self._commit(arn, sorted(group, key=lambda r: self._order[r.message.id]))
        except BaseException:
            with self._idle:
                self._busy.discard(arn)
                self._idle.notify_all()
            raise

    def _commit(self, arn: str, group: list[RanTask]) -> None:
        """Commit the group's results as one event group, or fall back to the old path."""
        results = [ran for ran in group if ran.result is not None]
        if not results:
            return
        try:
            if self._has_time is not None and not self._has_time():
                raise CommitSkippedError("out of time")
            now = self._stepper.clock()
            if any(
                (ran.lease is not None and ran.lease.until <= now)
                or (ran.group is not None and ran.group.expired(now))
                for ran in results
            ):
                # another runner may run it again now: its result goes through the lease
                raise CommitSkippedError("a lease ran out")
            events = [decode_event(ran.result) for ran in results if ran.result is not None]
            apply_events(self._stepper, arn, events)
            _ended(results)
        except Exception as exc:
            if self._landed(arn, results):  # committed; sending its outbox failed
                _ended(results)
                self._resend(arn, results, exc)
                return
            LOG.warning(
                "%s: the runner's commit of %d results fell back: %r", arn, len(results), exc
            )
            self._fall_back(results)

    def _landed(self, arn: str, results: list[RanTask]) -> bool:
        """Whether none of ``results``' attempts is open in the head any more (best effort).

        Then the commit landed (or a timeout or stop closed them, which makes the results
        stale): sending them again would only be dropped.
        """
        try:
            head = self._stepper.log.get(arn)
        except Exception:
            return False
        if head is None:
            return False
        open_tasks = decode_state(head.state).tasks
        return all(str(ran.message.body.get("task_id")) not in open_tasks for ran in results)

    def _resend(self, arn: str, results: list[RanTask], failure: Exception) -> None:
        """Send a landed commit's pending outbox once more.

        Failing that, its task messages stay unacknowledged, so that their redelivery
        re-sends it (see :meth:`closed`; the outbox repair job is the backstop).
        """
        try:
            apply_events(self._stepper, arn, [])  # an event-less delivery re-sends it
        except Exception:
            LOG.warning(
                "%s: the runner's commit landed but its outbox was not sent: %r", arn, failure
            )
            for ran in results:
                self.failures[ran.message.id] = failure

    def _fall_back(self, results: list[RanTask]) -> None:
        """The old path: each result recorded on its lease, then sent to the transition queue.

        A group's results are recorded together on the group's lease (one write).
        """
        claims: dict[int, tuple[GroupClaim, list[RanTask]]] = {}
        for ran in results:
            if ran.group is not None:
                claims.setdefault(id(ran.group), (ran.group, []))[1].append(ran)
        for claim, members in claims.values():
            try:  # recorded only while the lease is ours; sent in any case
                claim.record({task_id(r.message): r.result for r in members})
                for ran in members:
                    if ran.result is not None:
                        self._runs.send_result(ran.message, ran.result)
            except Exception as exc:  # the message comes back; its lease tells what ran
                for ran in members:
                    self.failures[ran.message.id] = exc
        for ran in results:
            if ran.group is not None:
                continue
            try:
                self._runs.record(ran)
                if ran.result is not None:
                    self._runs.send_result(ran.message, ran.result)
            except Exception as exc:  # the message comes back; its lease tells what ran
                self.failures[ran.message.id] = exc

    def closed(self, arn: str, head: ExecutionRecord | None) -> None:
        """A task found closed: re-send the head's pending outbox (a crash after the commit)."""
        if head is None or not head.outbox:
            return
        with self._lock:
            if arn in self._repaired:
                return
            self._repaired.add(arn)
        apply_events(self._stepper, arn, [])


def _ended(results: list[RanTask]) -> None:
    """Tell the group claims of ``results`` that these members are done (committed)."""
    claims: dict[int, tuple[GroupClaim, list[Message]]] = {}
    for ran in results:
        if ran.group is not None:
            claims.setdefault(id(ran.group), (ran.group, []))[1].append(ran.message)
    for claim, members in claims.values():
        claim.ended(members)
