"""Running task attempts exactly once per lease: claim, invoke, record the result.

:class:`TaskRuns` is the task path of :class:`stepflow.runtime.stepper.Stepper`:
queued ``task`` messages, inline tasks claimed one commit's outbox at a time,
and tasks taken over from an older outbox. Every run goes through a lease
record of :mod:`stepflow.runtime.leases`, so a task that ran meanwhile from the
queue is not run again; only a crash between running a task and recording its
result re-runs it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from stepflow.data.serialize import dumps, storable_problem, utf8_size
from stepflow.engine import Event, TaskFailed, TaskPending, TaskSubmitted, TaskSucceeded
from stepflow.engine.codec import decode_state
from stepflow.engine.effects import effect_reports
from stepflow.engine.resources import describe
from stepflow.errors import StatesErrorName
from stepflow.limits import DEFAULT_LIMITS, Limits
from stepflow.runtime import leases
from stepflow.runtime.effect_tally import count_effects
from stepflow.runtime.leases import TaskLease
from stepflow.runtime.messages import CANCEL, POLL, Message, encode_event, task_lease_key
from stepflow.runtime.outbox import delay as _delay
from stepflow.runtime.outcome import TaskDeferredError, TaskInvoker, TaskOutcome
from stepflow.runtime.ports import CoordinationLog, ExecutionRecord, MessageBus
from stepflow.runtime.task_queue import TaskRouter

if TYPE_CHECKING:
    from stepflow.runtime.task_groups import GroupClaim

LOG = logging.getLogger(__name__)

DEFAULT_POLL_SECONDS = 60.0
"""When a poll that found its job running asks for no interval: poll again this much later."""

_CANCELLED = {"type": "Cancelled"}
"""The result recorded on the lease of a cancel that ran (it reports no event)."""


@dataclass(frozen=True, slots=True)
class RanTask:
    """A task attempt that ran (or had run): its result event, and the lease it ran under.

    ``result`` is None for a cancel; ``lease`` is None when the result was
    recorded on the lease before (a duplicate of a finished attempt). ``group`` is
    the claim of the group message it ran in (then ``lease`` is None).
    """

    message: Message
    result: dict[str, Any] | None
    lease: TaskLease | None
    group: GroupClaim | None = None


class TaskLeaseHeldError(Exception):
    """Another worker is running this task attempt; deliver the message again later.

    ``until`` is when its lease runs out (epoch seconds).
    """

    def __init__(self, message: str, until: float = 0.0) -> None:
        super().__init__(message)
        self.until = until


@dataclass(frozen=True, slots=True)
class TaskRuns:
    """The task path of one stepper, over the collaborators it holds right now."""

    log: CoordinationLog
    bus: MessageBus
    invoker: TaskInvoker
    clock: Callable[[], float]
    owner: str
    task_lease_seconds: float
    router: TaskRouter | None
    limits: Limits = DEFAULT_LIMITS
    tasks_bus: MessageBus | None = None
    """The tasks queue (None: ``bus``): where a queued task sent again goes (:meth:`requeue`)."""

    def requeue(self, message: Message, seconds: float = 0.0) -> None:
        """Send a queued task message again, to the queue of the runner (never a stepper's).

        A handed-off group member or a deferred task: on the transition queue it would run
        on the stepper Lambda, whose timeout is 30 s (review 36).
        """
        (self.tasks_bus or self.bus).send(message, _delay(seconds))

    def claim_inline(
        self, tasks: list[tuple[Message, bool]]
    ) -> tuple[list[tuple[Message, bool]], list[TaskLease]]:
        """The inline tasks this stepper now holds, claimed one commit's outbox at a time.

        Returns them and the leases claimed for them.
        A batch leased to another live stepper is left to it: its messages are
        queued to be looked at again (as queued tasks) when that lease runs out.
        """
        batches: dict[str, list[tuple[Message, bool]]] = {}
        for task in tasks:  # message ids are <arn>#<seq of the commit>#<index>
            batches.setdefault(f"outbox#{task[0].id.rsplit('#', 2)[-2]}", []).append(task)
        held: list[tuple[Message, bool]] = []
        claimed: list[TaskLease] = []
        now = self.clock()
        for key, batch in batches.items():
            arn = batch[0][0].execution_arn
            claim = leases.claim(self.log, arn, key, self.owner, now, self.task_lease_seconds)
            if claim.status == "acquired" and claim.lease is not None:
                held.extend(batch)
                claimed.append(claim.lease)
                continue
            until = claim.lease.until if claim.lease is not None else now
            for message, _ in batch:
                self.bus.send(message, _delay(until - now))
        return held, claimed

    def release(self, claimed: list[TaskLease]) -> None:
        """Give back leases this stepper holds (best effort: it is failing already)."""
        for lease in claimed:
            with contextlib.suppress(Exception):
                self.log.put_lease(leases.release(lease, self.clock()))

    def run_inline(self, message: Message, takeover: bool) -> dict[str, Any] | None:
        """Run a held inline task; a taken-over one through its own lease.

        None: not now, or nothing to report (a cancel).
        A poll or a cancel always runs through its own lease, so that the outbox
        that still holds it after it ran (a cancel commits nothing) never runs it again.
        """
        try:
            if not takeover and message.body.get("op") is None:
                return self.invoke(message)
            return self.task_result(message, check_open=False)
        except TaskLeaseHeldError as held:
            self.bus.send(message, _delay(held.until - self.clock()))
            return None
        except TaskDeferredError as deferred:  # run again later, as a queued task
            self.bus.send(message, _delay(deferred.seconds))
            return None

    def run_task(self, message: Message) -> None:
        """A queued task message: run it once and send its result as an event."""
        if self.router is not None and self.router.deferred(message):
            self.router.dispatch(message)
            return
        try:
            result = self.task_result(message)
        except TaskDeferredError as deferred:  # not run: again later, not a failed delivery
            self.requeue(message, deferred.seconds)
            return
        if result is not None:
            self.send_result(message, result)

    def send_result(self, message: Message, result: dict[str, Any]) -> None:
        """Send a task message's result event to the transition queue (a stepper commits it)."""
        self.bus.send(Message(message.execution_arn, f"{message.id}#result", "event", result))

    def commits_directly(self, message: Message) -> bool:
        """Whether the runner commits this queued task's result itself (runner_commit.py).

        Not a poll or a cancel (their leases and results keep their own path), nor
        a task the router hands to an activity queue.
        """
        if message.body.get("op") is not None:
            return False
        return self.router is None or not self.router.deferred(message)

    def task_result(self, message: Message, *, check_open: bool = True) -> dict[str, Any] | None:
        """Run a queued inline task attempt once: lease it, run it, record its result event.

        None if the attempt is no longer open in the head (its result was
        committed, or it was cancelled). A duplicate of a finished attempt gets
        the recorded result; one whose lease is live raises
        :class:`TaskLeaseHeldError` (retry later). Only a crash between running
        the task and recording its result re-runs it.
        """
        ran = self.run_unrecorded(message, check_open=check_open)
        if ran is None:
            return None
        self.record(ran)
        return ran.result

    def run_unrecorded(
        self,
        message: Message,
        *,
        check_open: bool = True,
        closed: Callable[[ExecutionRecord | None], None] | None = None,
    ) -> RanTask | None:
        """:meth:`task_result` up to the invoke: the result, its lease still held, not recorded.

        The caller records it (:meth:`record`) or commits it; until either, the
        lease stays live, so a duplicate of the message waits for it to run out.
        ``closed`` is told the head that showed the attempt no longer open.
        """
        arn, task_id = message.execution_arn, str(message.body["task_id"])
        cancel = message.body.get("op") == CANCEL
        if check_open and not cancel:  # (a task taken over from an outbox just read is open;
            head = self.log.get(arn)  # a cancel stops a job whose attempt has ended)
            if head is None or task_id not in decode_state(head.state).tasks:
                if closed is not None:
                    closed(head)
                return None
        key = task_lease_key(message.body)
        now = self.clock()
        claim = leases.claim(self.log, arn, key, self.owner, now, self.task_lease_seconds)
        if claim.status == "busy":
            until = claim.lease.until if claim.lease is not None else now
            raise TaskLeaseHeldError(f"{arn}: task {key} is leased to another worker", until)
        if claim.result is not None:
            return RanTask(message, None if cancel else claim.result, None)
        assert claim.lease is not None  # acquired
        try:
            result = self.invoke(message)
        except Exception:
            self.release([claim.lease])
            raise
        return RanTask(message, result, claim.lease)

    def record(self, ran: RanTask) -> None:
        """Record a run's result on its lease (a result recorded before: nothing to write)."""
        if ran.lease is not None:
            leases.finish(self.log, ran.lease, _CANCELLED if ran.result is None else ran.result)

    def invoke(self, message: Message) -> dict[str, Any] | None:
        """Call the task's resource and return its result as an encoded engine event.

        A poll (``op`` poll) reports the job's end, or ``TaskPending`` while it runs;
        a cancel (``op`` cancel) reports nothing (None), and its failure is only logged:
        the attempt has ended, so retrying the stop could only repeat it.
        """
        task_id = str(message.body["task_id"])
        op = message.body.get("op")
        # The execution names the session its call's role is assumed in (CloudTrail).
        body = {**message.body, "execution_arn": message.execution_arn}
        if op == CANCEL:
            self._cancel(body)
            return None
        outcome = self.invoker(body)
        if outcome.ok and outcome.submitted:
            resource = str(message.body.get("resource", ""))
            return encode_event(self._submitted(task_id, resource, outcome, poll=op == POLL))
        event: Event = (
            self._checked(task_id, outcome.output)
            if outcome.ok
            else TaskFailed(task_id, outcome.error, outcome.cause)
        )
        event = with_effects(event, outcome)
        if (
            op != POLL
            and not outcome.final
            and isinstance(event, TaskSucceeded)
            and describe(str(message.body.get("resource", ""))).wait_for_token
        ):
            # Sent: the result comes with SendTaskSuccess; the response is TaskSubmitted's output
            # (checked as a result is: a response too large to record fails the task).
            event = TaskSubmitted(task_id, event.output)
        return encode_event(event)

    def _submitted(
        self, task_id: str, resource: str, outcome: TaskOutcome, *, poll: bool
    ) -> TaskSubmitted | TaskPending | TaskFailed:
        """A started job (``TaskSubmitted``), or, from a poll, one still running (``TaskPending``).

        A start's response is checked as a result is (too large to record fails the task).
        """
        if poll:
            after = DEFAULT_POLL_SECONDS if outcome.poll_after is None else outcome.poll_after
            return TaskPending(task_id, after, outcome.handle)
        checked = self._checked(task_id, outcome.output)
        if isinstance(checked, TaskFailed):
            return checked
        return TaskSubmitted(task_id, outcome.output, outcome.handle, outcome.poll_after, resource)

    def _cancel(self, body: dict[str, Any]) -> None:
        """Stop a polled job (best effort, once): a failure is logged, never retried."""
        try:
            outcome = self.invoker(body)
        except Exception:
            LOG.exception(
                "%s: stopping the job of task %s failed",
                body.get("execution_arn"),
                body.get("task_id"),
            )
            return
        if not outcome.ok:
            LOG.warning(
                "%s: stopping the job of task %s failed: %s: %s",
                body.get("execution_arn"),
                body.get("task_id"),
                outcome.error,
                outcome.cause,
            )

    def _checked(self, task_id: str, output: Any) -> TaskSucceeded | TaskFailed:
        """A task's result as its event (see :func:`checked_result`)."""
        return checked_result(task_id, output, self.limits)


def with_effects(event: Event, outcome: TaskOutcome) -> Event:
    """``event`` (a task's result) with the effects of ``outcome``, bounded; counted too.

    Only a result that ends the attempt carries them (they are recorded in the
    history just before it, see :mod:`stepflow.engine.effects`).
    """
    if not outcome.effects:
        return event
    count_effects(outcome.effects)
    if not isinstance(event, TaskSucceeded | TaskFailed):
        return event
    return replace(event, effects=effect_reports(outcome.effects))


def checked_result(task_id: str, output: Any, limits: Limits) -> TaskSucceeded | TaskFailed:
    """A task's result as its event; one no log could hold, or too large, fails the task.

    Checked before the result is recorded on the lease or sent as a message (or
    handed back by an EXPRESS batch), so poison data never reaches a write that
    would be retried.
    """
    problem = storable_problem(output)
    if problem is not None:  # never retried or caught: the execution fails
        return TaskFailed(
            task_id,
            StatesErrorName.RUNTIME.value,
            f"The task's result cannot be stored: {problem}.",
        )
    size = utf8_size(dumps(output))
    if size > limits.max_payload_bytes:  # caught only by name, as on AWS
        return TaskFailed(
            task_id,
            StatesErrorName.DATA_LIMIT_EXCEEDED.value,
            f"The task's result is {size} bytes, more than the {limits.max_payload_bytes}"
            " bytes of max_payload_bytes (STEPFLOW_MAX_PAYLOAD_BYTES).",
        )
    return TaskSucceeded(task_id, output)
