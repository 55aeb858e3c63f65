"""Queued tasks run side by side; the runner commits the results of the tasks it ran itself.

:func:`run_tasks` is the task part of :func:`stepflow.runtime.stepper_batch.run_batch`
(the runner Lambda's batch, up to ten task messages). Each task runs under its own
lease (:meth:`TaskRuns.run_unrecorded`). The results of one execution's tasks in
the batch are that execution's event group, committed by the stepper's own
:func:`stepflow.runtime.stepper_commit.apply_events` (decided on the latest head,
conditional on ``seq``, conflicts retried, the outbox then sent) as soon as all of
*that execution's* tasks in the batch have ended: a Map's ten results are one
commit, and a slow task delays no other execution's commit.

A committed result closes its attempt in the head, so a duplicate delivery of the
task message is dropped by the head check before the claim, and the lease needs no
recorded result. When the commit does not happen (an error, conflicts exhausted,
the invocation out of time, a lease that ran out meanwhile), the results go the old
way, the fallback: each is recorded on its lease and sent to the transition queue,
where a stepper commits it. Nothing is lost:

- a crash between the invoke and the commit leaves the lease live and the message
  unacknowledged: its redelivery waits for the lease to run out, then runs the task
  again (the window a crash between the invoke and the recorded result always had);
- a crash after the commit, before its outbox is sent: the redelivered task message
  finds its attempt closed and the head's outbox pending, and re-sends it as any
  stepper delivery does (:func:`apply_events` with no event); the repair job is the
  backstop.

Polls and cancels (``.sync`` jobs) and tasks for activity queues keep the old path.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from stepflow.runtime.messages import Message, decode_event
from stepflow.runtime.outbox import delay as _delay
from stepflow.runtime.outcome import TaskDeferredError
from stepflow.runtime.ports import ExecutionRecord
from stepflow.runtime.stepper_commit import apply_events
from stepflow.runtime.task_runs import RanTask, TaskRuns

if TYPE_CHECKING:
    from stepflow.runtime.stepper import Stepper

LOG = logging.getLogger(__name__)


class CommitSkippedError(Exception):
    """The runner did not commit a group (no time left, or a lease ran out): fall back."""


def run_tasks(
    stepper: Stepper, tasks: list[Message], has_time: Callable[[], bool] | None = None
) -> list[tuple[Message, Exception]]:
    """Run queued task messages, up to ``stepper.task_concurrency`` at a time; the failures.

    The runner takes a batch of up to ten tasks in one invocation (one receive,
    one delete, one Lambda request for a Map's ten tasks); they wait on their
    functions side by side, and each execution's results are committed together
    as soon as its last task in the batch ends (see the module's docstring).
    """
    runs = stepper._tasks()
    # A duplicate inside the batch shares its first copy's run and outcome: run side by
    # side, it would find the first copy's lease live (its result not recorded).
    first: dict[tuple[str, str], Message] = {}
    copies = [(m, first.setdefault((m.execution_arn, m.id), m)) for m in tasks]
    tasks = list(first.values())
    groups = _Groups(stepper, runs, tasks, has_time)

    def one(message: Message) -> Exception | None:
        try:
            if runs.commits_directly(message):
                groups.run(message)
            else:
                runs.run_task(message)
        except Exception as exc:  # reported per message; the others go on
            return exc
        return None

    workers = min(len(tasks), max(1, stepper.task_concurrency))
    if workers == 1:
        outcomes = [one(message) for message in tasks]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="task") as pool:
            # each thread runs in a copy of the caller's context (the batch's effect tally)
            futures = [pool.submit(contextvars.copy_context().run, one, m) for m in tasks]
            outcomes = [future.result() for future in futures]
    failed = {
        id(m): exc
        for m, own in zip(tasks, outcomes, strict=True)
        if (exc := own or groups.failures.get(m.id)) is not None
    }
    return [(m, failed[id(copy)]) for m, copy in copies if id(copy) in failed]


class _Groups:
    """The results of a batch's tasks, gathered per execution and committed per execution."""

    def __init__(
        self,
        stepper: Stepper,
        runs: TaskRuns,
        tasks: list[Message],
        has_time: Callable[[], bool] | None,
    ) -> None:
        self._stepper = stepper
        self._runs = runs
        self._has_time = has_time
        direct = [m for m in tasks if runs.commits_directly(m)]
        self._order = {m.id: i for i, m in enumerate(direct)}
        self._left = Counter(m.execution_arn for m in direct)
        self._ran: dict[str, list[RanTask]] = {}
        self._repaired: set[str] = set()
        self._lock = threading.Lock()
        self.failures: dict[str, Exception] = {}
        """By message id: a task that ran whose result could be neither committed nor sent."""

    def run(self, message: Message) -> None:
        """Run one task; the last of its execution's tasks to end commits their results."""
        arn = message.execution_arn
        ran: RanTask | None = None
        try:
            ran = self._runs.run_unrecorded(message, closed=lambda head: self._closed(arn, head))
        except TaskDeferredError as deferred:  # not run: again later, not a failed delivery
            self._runs.bus.send(message, _delay(deferred.seconds))
        finally:  # a task that failed to run still counts as ended for its group
            with self._lock:
                if ran is not None:
                    self._ran.setdefault(arn, []).append(ran)
                self._left[arn] -= 1
                group = self._ran.pop(arn, []) if self._left[arn] == 0 else []
            if group:
                self._commit(arn, sorted(group, key=lambda r: self._order[r.message.id]))

    def _commit(self, arn: str, group: list[RanTask]) -> None:
        """Commit the group's results as one event group, or fall back to the old path."""
        results = [ran for ran in group if ran.result is not None]
        if not results:
            return
        try:
            if self._has_time is not None and not self._has_time():
                raise CommitSkippedError("out of time")
            now = self._stepper.clock()
            if any(ran.lease is not None and ran.lease.until <= now for ran in results):
                # another runner may run it again now: its result goes through the lease
                raise CommitSkippedError("a lease ran out")
            events = [decode_event(ran.result) for ran in results if ran.result is not None]
            apply_events(self._stepper, arn, events)
        except Exception as exc:
            LOG.warning(
                "%s: the runner's commit of %d results fell back: %r", arn, len(results), exc
            )
            self._fall_back(results)

    def _fall_back(self, results: list[RanTask]) -> None:
        """The old path: each result recorded on its lease, then sent to the transition queue."""
        for ran in results:
            try:
                self._runs.record(ran)
                if ran.result is not None:
                    self._runs.send_result(ran.message, ran.result)
            except Exception as exc:  # the message comes back; its lease tells what ran
                self.failures[ran.message.id] = exc

    def _closed(self, arn: str, head: ExecutionRecord | None) -> None:
        """A task found closed: re-send the head's pending outbox (a crash after the commit)."""
        if head is None or not head.outbox:
            return
        with self._lock:
            if arn in self._repaired:
                return
            self._repaired.add(arn)
        apply_events(self._stepper, arn, [])
