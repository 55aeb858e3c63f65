"""GetActivityTask and SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat, fenced.

Every report is checked against the latest head of its execution inside the
stepper's conditional commit (:meth:`Stepper.report_task`): the token must be
genuine, its attempt open and, for an activity task, its delivery the latest
one. Otherwise the report is refused (``InvalidToken`` / ``TaskTimedOut``) and
nothing is written. Two workers racing to complete one attempt both pass the
check on the same head, but only one commit lands on it; the other reloads,
finds the attempt closed and is refused.

Each hand-out of an activity task (a receive of its queue message) is a new
*delivery*: it is recorded in the head with the message's receipt, and its
token is bound to it, so a worker whose lease ran out can no longer report
once the task went to another worker. Without ``HeartbeatSeconds`` a dead
worker's task is thus handed to the next worker when the lease (the
message's visibility) expires, until its lease has run out
``max_deliveries`` times; then the attempt fails with :data:`LEASE_EXPIRED`
(Retry/Catch apply). A task a worker gives back (``release_task``) is marked
released in the log, so handing it out again does not count as an expiry.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from stepflow.activities.errors import (
    ActivityError,
    activity_does_not_exist,
    invalid_token,
    task_timed_out,
    validation,
)
from stepflow.activities.names import name_of, queue_name
from stepflow.activities.tokens import TaskToken, delivery_token, genuine, parse
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
from stepflow.engine.model import TaskSucceeded
from stepflow.runtime.messages import Message
from stepflow.runtime.ports import ExecutionRecord
from stepflow.runtime.stepper import TASK_LEASES, Stepper
from stepflow.runtime.task_queue import Lease, QueueDoesNotExistError, TaskQueue

logger = logging.getLogger(__name__)

LEASE_EXPIRED = "States.TaskFailed"
"""The error of an attempt whose lease ran out ``max_deliveries`` times (no worker finished)."""

MAX_POLL_SECONDS = 60
"""GetActivityTask's long poll, as in Step Functions."""

MAX_OUTPUT_CHARS = 256 * 1024


class _ClosedError(Exception):
    """The attempt of a queued task is no longer open: drop its message."""


class _ExhaustedError(Exception):
    """The attempt's lease ran out ``max_deliveries`` times: fail it."""

    def __init__(self, expired: int) -> None:
        super().__init__(f"lease expired {expired} times")
        self.expired = expired


class TaskService:
    """The worker-facing operations; mixed into :class:`~stepflow.activities.ActivityService`."""

    stepper: Stepper
    queue: TaskQueue
    region: str
    account: str
    lease_seconds: int
    max_deliveries: int

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
        """SendTaskSuccess: ``output`` is the task's result as JSON text."""
        token = parse(p.get("taskToken"))
        text = p.get("output")
        if not isinstance(text, str) or len(text) > MAX_OUTPUT_CHARS:
            raise _invalid_output("output must be JSON text of at most 256 KiB")
        try:
            output = json.loads(text)
        except ValueError as exc:
            raise _invalid_output(f"output is not JSON: {exc}") from None
        lease = self._report(token, TaskSucceeded(token.task_id, output))
        if lease is not None:
            self.queue.ack(lease["queue"], lease["receipt"])
        return {}

    def send_task_failure(self, p: dict[str, Any]) -> dict[str, Any]:
        """SendTaskFailure with optional ``error`` (256 chars) and ``cause`` (32,768)."""
        token = parse(p.get("taskToken"))
        error, cause = p.get("error"), p.get("cause")
        if error is not None and (not isinstance(error, str) or len(error) > 256):
            raise validation("error must be a string of at most 256 characters")
        if cause is not None and (not isinstance(cause, str) or len(cause) > 32_768):
            raise validation("cause must be a string of at most 32768 characters")
        lease = self._report(token, TaskFailed(token.task_id, error, cause))
        if lease is not None:
            self.queue.ack(lease["queue"], lease["receipt"])
        return {}

    def send_task_heartbeat(self, p: dict[str, Any]) -> dict[str, Any]:
        """SendTaskHeartbeat: recorded in the log, and the lease extended."""
        token = parse(p.get("taskToken"))
        lease = self._report(token, TaskHeartbeat(token.task_id))
        if lease is not None:
            self.queue.extend(lease["queue"], lease["receipt"], int(lease["lease_seconds"]))
        return {}

    def release_task(self, p: dict[str, Any]) -> dict[str, Any]:
        """Give an activity task back (StepFlow extension): the next poll receives it at once.

        A shutting-down worker calls this for tasks it cannot finish; its token
        stops working as soon as another worker takes the task.
        """
        token = parse(p.get("taskToken"))
        leases: list[dict[str, Any] | None] = []

        def guard(record: ExecutionRecord | None) -> dict[str, Any] | None:
            lease = self._check(token, record)
            leases.append(lease)
            if lease is None or record is None:
                return None
            # Marked released: the next hand-out does not count as an expired lease.
            open_leases = dict(record.attributes.get(TASK_LEASES) or {})
            open_leases[token.task_id] = {**lease, "released": True}
            return {TASK_LEASES: open_leases}

        self.stepper.report_task(token.execution_arn, Continue(), guard)
        lease = leases[-1] if leases else None
        if lease is not None:
            self.queue.extend(lease["queue"], lease["receipt"], 0)
        return {}

    def _report(self, token: TaskToken, event: Event) -> dict[str, Any] | None:
        """Commit ``event`` if ``token`` is current; return its delivery's lease (if any)."""
        leases: list[dict[str, Any] | None] = []

        def guard(record: ExecutionRecord | None) -> None:
            leases.append(self._check(token, record))

        self.stepper.report_task(token.execution_arn, event, guard)
        return leases[-1] if leases else None

    def _check(self, token: TaskToken, record: ExecutionRecord | None) -> dict[str, Any] | None:
        """Refuse a token that is not genuine or not current on ``record``; return its lease."""
        if record is None:
            raise invalid_token("no execution has this task")
        state = decode_state(record.state)
        if not genuine(token, state):
            raise invalid_token("the token was not issued for this task")
        if record.status != "RUNNING" or token.task_id not in state.tasks:
            raise task_timed_out()
        lease: dict[str, Any] | None = (record.attributes.get(TASK_LEASES) or {}).get(token.task_id)
        if token.delivery is not None and (lease is None or lease.get("n") != token.delivery):
            raise task_timed_out()  # handed to another worker since
        return lease if token.delivery is not None else None

    def _hand_out(self, lease: Lease, worker: str | None) -> dict[str, Any] | None:
        """Record a delivery of the task in ``lease`` and return it; None if it is not open."""
        try:
            message = Message.from_json(lease.body)
            task_id = str(message.body["task_id"])
            heartbeat = message.body.get("heartbeat_seconds")
        except (KeyError, TypeError, ValueError):
            # Left in the queue: it comes back until SQS moves it to the DLQ (and alarms).
            logger.error("undecodable task message", extra={"queue": lease.queue})
            return None
        lease_seconds = int(heartbeat) if heartbeat else self.lease_seconds
        states: list[tuple[ExecutionState, int]] = []

        def guard(record: ExecutionRecord | None) -> dict[str, Any]:
            state = _open_state(record, task_id)
            assert record is not None
            leases = dict(record.attributes.get(TASK_LEASES) or {})
            previous = leases.get(task_id) or {}
            expired = int(previous.get("expired", 0))
            if previous and not previous.get("released"):
                expired += 1  # the last hand-out's lease ran out
            if expired >= self.max_deliveries:
                raise _ExhaustedError(expired)
            delivery = int(previous.get("n", 0)) + 1
            leases[task_id] = {
                "n": delivery,
                "expired": expired,
                "queue": lease.queue,
                "receipt": lease.receipt,
                "lease_seconds": lease_seconds,
                "worker": worker,
            }
            states.append((state, delivery))
            return {TASK_LEASES: leases}

        try:
            self.stepper.report_task(message.execution_arn, TaskStarted(task_id), guard)
        except _ClosedError:
            self.queue.ack(lease.queue, lease.receipt)  # timed out, finished or cancelled
            return None
        except _ExhaustedError as exc:
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

        def guard(record: ExecutionRecord | None) -> None:
            _open_state(record, task_id)

        try:
            failed = TaskFailed(task_id, LEASE_EXPIRED, cause)
            self.stepper.report_task(message.execution_arn, failed, guard)
        except _ClosedError:
            pass
        self.queue.ack(lease.queue, lease.receipt)


def _open_state(record: ExecutionRecord | None, task_id: str) -> ExecutionState:
    if record is None or record.status != "RUNNING":
        raise _ClosedError(task_id)
    state = decode_state(record.state)
    if task_id not in state.tasks:
        raise _ClosedError(task_id)
    return state


def _invalid_output(message: str) -> ActivityError:
    return ActivityError("InvalidOutput", message)
