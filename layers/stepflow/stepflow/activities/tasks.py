"""GetActivityTask and SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat, fenced.

Every report is checked against the latest head of its execution inside the
stepper's conditional commit (:meth:`Stepper.report_task`): the token must be
whole and genuine, its attempt open and, for an activity task, a token of
its current delivery (a token without its delivery part is refused for an
activity task). Otherwise the report is refused (``InvalidToken`` /
``TaskTimedOut``) and nothing is written. The commit is fenced by the task's
lease record (:class:`~stepflow.runtime.leases.LeaseFence`): it lands only if
that record is still the one the token was checked against.

Each hand-out of an activity task (a receive of its queue message) is a
*delivery*: a conditional claim of the attempt's lease record
(:func:`stepflow.runtime.leases.hand_out`), committed with its
``ActivityStarted``. While the current delivery's lease is live, a copy of
the message that another poller receives (SQS may hand one message to two
receivers, or early) hands out nothing. The token is bound to the delivery,
so a worker whose lease ran out can no longer report once the task went to
another worker. Without ``HeartbeatSeconds`` a dead worker's task is thus
handed to the next worker when the lease expires, until its lease has run
out ``max_deliveries`` times; then the attempt fails with
:data:`LEASE_EXPIRED` (Retry/Catch apply). A task a worker gives back
(``release_task``) is marked released, so handing it out again does not count
as an expiry.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from stepflow.activities.errors import (
    ActivityError,
    activity_does_not_exist,
    invalid_token,
    task_timed_out,
    validation,
)
from stepflow.activities.names import is_cell_activity, name_of, queue_name
from stepflow.activities.tokens import TaskToken, delivery_token, genuine, parse
from stepflow.data import safe_json
from stepflow.data.serialize import dumps
from stepflow.engine import (
    Continue,
    Event,
    ExecutionState,
    TaskFailed,
    TaskHeartbeat,
    TaskStarted,
)
from stepflow.engine.codec import decode_state
from stepflow.engine.effects import effect_reports
from stepflow.engine.model import TaskSucceeded
from stepflow.engine.resources import describe
from stepflow.errors import StatesErrorName
from stepflow.runtime import leases
from stepflow.runtime.leases import (
    LeaseExhaustedError,
    LeaseFence,
    LeaseHeldError,
    TaskLease,
)
from stepflow.runtime.messages import Message
from stepflow.runtime.offload import resolve
from stepflow.runtime.payloads import (
    PayloadCorruptError,
    PayloadNotFoundError,
    PayloadStore,
    PayloadStoreUnavailableError,
)
from stepflow.runtime.ports import ExecutionRecord
from stepflow.runtime.signing import ForgedMessageError, MessageSigner
from stepflow.runtime.stepper import Stepper
from stepflow.runtime.targets import OWN_TARGET_CAUSE
from stepflow.runtime.task_queue import Lease, QueueDoesNotExistError, TaskQueue

logger = logging.getLogger(__name__)

EFFECT_TRACES = "fxtrace#"
"""Lease-record id prefix of a cell task's effects, as its worker reports them.

``fxtrace#<task id>#<delivery>``: a ``stepflow worker --cells`` writes its run's
effect reports there before SendTaskSuccess/SendTaskFailure, and the report's
result event carries them, so the history shows a worker's effects as an inline
run's. The delivery in the id keeps a superseded worker's reports out.
"""


def effect_traces_id(task_id: str, delivery: int) -> str:
    """The id of the effect reports of delivery ``delivery`` of attempt ``task_id``."""
    return f"{EFFECT_TRACES}{task_id}#{delivery}"


LEASE_EXPIRED = "States.TaskFailed"
"""The error of an attempt whose lease ran out ``max_deliveries`` times (no worker finished)."""

MAX_POLL_SECONDS = 60
"""GetActivityTask's long poll, as in Step Functions."""


class _ClosedError(Exception):
    """The attempt of a queued task is no longer open: drop its message."""


class TaskService:
    """The worker-facing operations; mixed into :class:`~stepflow.activities.ActivityService`."""

    stepper: Stepper
    queue: TaskQueue
    region: str
    account: str
    clock: Callable[[], float]
    lease_seconds: int
    max_deliveries: int
    signer: MessageSigner
    payloads: PayloadStore | None

    def get_activity_task(self, p: dict[str, Any]) -> dict[str, Any]:
        """GetActivityTask: ``{"taskToken", "input"}``, or ``{}`` when none came in time.

        ``waitSeconds`` (a StepFlow extension, 0-60, default 60) bounds the long poll.
        """
        name = name_of(p.get("activityArn"), self.region, self.account)
        worker = p.get("workerName")
        if worker is not None and (not isinstance(worker, str) or len(worker) > 80):
            raise validation("workerName must be a string of at most 80 characters")
        wait = p.get("waitSeconds", MAX_POLL_SECONDS)
        if not isinstance(wait, int | float) or not 0 <= wait <= MAX_POLL_SECONDS:
            raise validation(f"waitSeconds must be between 0 and {MAX_POLL_SECONDS}")
        queue = queue_name(name)
        deadline = time.monotonic() + wait
        while True:
            left = max(0.0, deadline - time.monotonic())
            try:
                lease = self.queue.receive(
                    queue, lease_seconds=self.lease_seconds, wait_seconds=left
                )
            except QueueDoesNotExistError:
                raise activity_does_not_exist(str(p.get("activityArn"))) from None
            if lease is not None:
                task = self._hand_out(lease, worker)
                if task is not None:
                    return task
            elif left <= 0:
                return {}

    def send_task_success(self, p: dict[str, Any]) -> dict[str, Any]:
        """SendTaskSuccess: ``output`` is the task's result as JSON text.

        A result over ``max_payload_bytes`` is accepted and fails the task with
        ``States.DataLimitExceeded`` (a Catch can handle it); only text no request
        could carry (over ``max_request_bytes``) is refused.
        """
        token = parse(p.get("taskToken"))
        text = p.get("output")
        limits = self.stepper.limits
        ceiling = max(limits.max_payload_bytes, limits.max_request_bytes)
        if not isinstance(text, str) or len(text.encode("utf-8", "surrogatepass")) > ceiling:
            raise _invalid_output(f"output must be JSON text of at most {ceiling} bytes")
        try:
            safe_json.loads(text, limits.max_json_depth)  # bounded; the value keeps big ints
            output = json.loads(text)
        except ValueError as exc:
            raise _invalid_output(f"output is not JSON: {exc}") from None
        effects = self._effects(token)
        succeeded = TaskSucceeded(token.task_id, output, external=True, effects=effects)
        lease = self._report(token, succeeded)
        if lease is not None and lease.queue and lease.receipt:
            self.queue.ack(lease.queue, lease.receipt)
        return {}

    def send_task_failure(self, p: dict[str, Any]) -> dict[str, Any]:
        """SendTaskFailure with optional ``error`` and ``cause`` (lengths: the stepper's limits)."""
        token = parse(p.get("taskToken"))
        error, cause = p.get("error"), p.get("cause")
        longest_error, longest_cause = (
            self.stepper.limits.max_error_length,
            (self.stepper.limits.max_cause_length),
        )
        if error is not None and (not isinstance(error, str) or len(error) > longest_error):
            raise validation(f"error must be a string of at most {longest_error} characters")
        if cause is not None and (not isinstance(cause, str) or len(cause) > longest_cause):
            raise validation(f"cause must be a string of at most {longest_cause} characters")
        effects = self._effects(token)
        failed = TaskFailed(token.task_id, error, cause, external=True, effects=effects)
        lease = self._report(token, failed)
        if lease is not None and lease.queue and lease.receipt:
            self.queue.ack(lease.queue, lease.receipt)
        return {}

    def _effects(self, token: TaskToken) -> tuple[dict[str, Any], ...]:
        """The effects a cell worker reported for ``token``'s delivery (none: ``()``).

        Only delivery-bound (activity) tokens have any; they are bounded again here.
        """
        if token.delivery is None:
            return ()
        record = self.stepper.log.lease(
            token.execution_arn, effect_traces_id(token.task_id, token.delivery)
        )
        if record is None or not isinstance(record.result, dict):
            return ()
        return effect_reports(record.result.get("effects") or ())

    def send_task_heartbeat(self, p: dict[str, Any]) -> dict[str, Any]:
        """SendTaskHeartbeat: recorded in the log, and the lease extended."""
        token = parse(p.get("taskToken"))
        lease = self._report(token, TaskHeartbeat(token.task_id), _heartbeat)
        if lease is not None and lease.queue and lease.receipt:
            self.queue.extend(lease.queue, lease.receipt, int(lease.lease_seconds))
        return {}

    def release_task(self, p: dict[str, Any]) -> dict[str, Any]:
        """Give an activity task back (StepFlow extension): the next poll receives it at once.

        A shutting-down worker calls this for tasks it cannot finish; its token
        stops working as soon as another worker takes the task.
        """
        token = parse(p.get("taskToken"))
        lease = self._report(token, Continue(), leases.release)
        if lease is not None and lease.queue and lease.receipt:
            self.queue.extend(lease.queue, lease.receipt, 0)
        return {}

    def _report(
        self,
        token: TaskToken,
        event: Event,
        write: Callable[[TaskLease, float], TaskLease] | None = None,
    ) -> TaskLease | None:
        """Commit ``event`` if ``token`` is current; return its delivery's lease (if any).

        The commit is fenced by the lease record; ``write`` gives the record's
        next version to store with it (a heartbeat, a release).
        """
        checked: list[TaskLease | None] = []

        def guard(record: ExecutionRecord | None) -> LeaseFence | None:
            lease = self._check(token, record)
            checked.append(lease)
            if lease is None:
                return None
            return LeaseFence(lease, write(lease, self.clock()) if write else None)

        self.stepper.report_task(token.execution_arn, event, guard)
        return checked[-1] if checked else None

    def _check(self, token: TaskToken, record: ExecutionRecord | None) -> TaskLease | None:
        """Refuse a token that is not whole, genuine and current on ``record``; its lease.

        A callback token has no lease (None); an activity task's token must
        name the delivery its lease record holds now.
        """
        if record is None:
            raise invalid_token("no execution has this task")
        state = decode_state(record.state)
        if not genuine(token, state):
            raise invalid_token("the token was not issued for this task")
        if record.status != "RUNNING" or token.task_id not in state.tasks:
            raise task_timed_out()
        if self._is_activity(record, state, token.task_id) != (token.delivery is not None):
            raise invalid_token("the token was not issued for this task")
        if token.delivery is None:
            return None
        lease = self.stepper.log.lease(token.execution_arn, token.task_id)
        if lease is None or lease.delivery != token.delivery:
            raise task_timed_out()  # handed to another worker since
        return lease

    def _is_activity(self, record: ExecutionRecord, state: ExecutionState, task_id: str) -> bool:
        """True if the open attempt ``task_id`` is leased like an activity task (not a callback).

        A ``stepflow:*`` task (a cell) is handed out only from a cell queue
        (:mod:`stepflow.cells.queues`); inline, it has no token at all.
        """
        frame = state.frames.get(state.tasks[task_id])
        if frame is None:
            return False
        definition = self.stepper.definitions(record.state_machine_arn)
        machine = definition.machines.get(frame.machine)
        node = machine.states.get(frame.state) if machine is not None else None
        resource = getattr(node, "resource", None)
        if not isinstance(resource, str):
            return False
        info = describe(resource)
        routable = info.service == "stepflow" and info.pattern == "request-response"
        return info.kind == "activity" or routable

    def _hand_out(self, lease: Lease, worker: str | None) -> dict[str, Any] | None:
        """Record a delivery of the task in ``lease`` and return it; None if it is not open.

        A message the signer refuses (not sent by StepFlow, or altered) is
        dropped at once: it never becomes a task a worker can complete.
        """
        try:
            message = resolve(lease.body, self.signer, self.payloads)
        except ForgedMessageError as exc:
            logger.warning("forged task message dropped", extra={"reason": exc.reason})
            self.queue.ack(lease.queue, lease.receipt)
            return None
        except (PayloadNotFoundError, PayloadStoreUnavailableError, PayloadCorruptError) as exc:
            # Left in the queue: it comes back, and goes to the DLQ if it never reads.
            logger.error("stored task message unreadable", extra={"reason": repr(exc)})
            return None
        try:
            task_id = str(message.body["task_id"])
            heartbeat = message.body.get("heartbeat_seconds")
        except (KeyError, TypeError, ValueError):
            # Left in the queue: it comes back until SQS moves it to the DLQ (and alarms).
            logger.error("undecodable task message", extra={"queue": lease.queue})
            return None
        resource = str(message.body.get("resource", ""))
        if is_cell_activity(resource):  # queued before the router refused these
            logger.warning("task on a cell queue's activity refused", extra={"resource": resource})
            cause = f"{OWN_TARGET_CAUSE}: activity '{resource}' is a cell queue"
            self._fail(message, task_id, lease, StatesErrorName.RUNTIME, cause)
            return None
        lease_seconds = int(heartbeat) if heartbeat else self.lease_seconds
        states: list[tuple[ExecutionState, int]] = []

        def guard(record: ExecutionRecord | None) -> LeaseFence:
            state = _open_state(record, task_id)
            previous = leases.current(self.stepper.log, message.execution_arn, task_id)
            new = leases.hand_out(
                previous,
                now=self.clock(),
                worker=worker,
                queue=lease.queue,
                receipt=lease.receipt,
                lease_seconds=lease_seconds,
                max_deliveries=self.max_deliveries,
            )
            states.append((state, new.delivery))
            return LeaseFence(previous, new)

        try:
            self.stepper.report_task(message.execution_arn, TaskStarted(task_id), guard)
        except _ClosedError:
            self.queue.ack(lease.queue, lease.receipt)  # timed out, finished or cancelled
            return None
        except LeaseHeldError:
            return None  # a copy of a message whose delivery is live: its holder has it
        except LeaseExhaustedError as exc:
            self._give_up(message, task_id, lease, exc.expired)
            return None
        if lease_seconds != self.lease_seconds:
            self.queue.extend(lease.queue, lease.receipt, lease_seconds)
        state, delivery = states[-1]
        token = delivery_token(state, task_id, delivery)
        return {"taskToken": token, "input": dumps(message.body.get("input"))}

    def _give_up(self, message: Message, task_id: str, lease: Lease, expired: int) -> None:
        """The task's lease ran out too often: fail the attempt and drop its message."""
        cause = (
            f"The task's lease expired {expired} times "
            f"without a result (max_deliveries={self.max_deliveries})."
        )
        self._fail(message, task_id, lease, LEASE_EXPIRED, cause)

    def _fail(self, message: Message, task_id: str, lease: Lease, error: str, cause: str) -> None:
        """Fail the attempt ``task_id`` (if still open) and drop its message."""

        def guard(record: ExecutionRecord | None) -> None:
            _open_state(record, task_id)

        try:
            failed = TaskFailed(task_id, error, cause)
            self.stepper.report_task(message.execution_arn, failed, guard)
        except _ClosedError:
            pass
        self.queue.ack(lease.queue, lease.receipt)


def _heartbeat(lease: TaskLease, now: float) -> TaskLease:
    """The lease a heartbeat writes; refused once the worker gave the task back.

    A heartbeat racing its worker's release would otherwise hide the released
    message again for a whole lease.
    """
    if lease.released:
        raise task_timed_out()
    return leases.heartbeat(lease, now)


def _open_state(record: ExecutionRecord | None, task_id: str) -> ExecutionState:
    if record is None or record.status != "RUNNING":
        raise _ClosedError(task_id)
    state = decode_state(record.state)
    if task_id not in state.tasks:
        raise _ClosedError(task_id)
    return state


def _invalid_output(message: str) -> ActivityError:
    return ActivityError("InvalidOutput", message)
