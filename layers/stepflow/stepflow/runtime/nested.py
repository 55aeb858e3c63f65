"""Nested executions: the port a Task uses to start an execution, and the child's report.

``arn:aws:states:::states:startExecution`` (every pattern) starts an execution of
this StepFlow through an :class:`ExecutionStarter`: the API layer implements it
with StartExecution's own semantics (versions, aliases, roleArn, names, input),
in process, never over HTTP. A ``.sync``/``.sync:2`` child carries its caller
(``ExecutionState.caller``); when it ends the engine emits ``NotifyCaller``, and
:func:`caller_message` turns that into the caller task's result, in the shape
of AWS's ``DescribeExecution`` response (PascalCase, dates as epoch milliseconds).

Pure functions and protocols only: no I/O, no clock (``now`` is passed).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from stepflow.data.serialize import dumps
from stepflow.engine import (
    CancelTask,
    Event,
    ExecutionState,
    NotifyCaller,
    TaskFailed,
    TaskSubmitted,
    TaskSucceeded,
)
from stepflow.engine.resources import describe
from stepflow.errors import StatesErrorName
from stepflow.runtime.messages import Message, encode_event

SERVICE = "states"
ACTION = "startExecution"

STARTED_BY_EXECUTION_ID = "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"
"""The input field that associates a child with the execution that started it. AWS never
adds it: the Task passes it (``"AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$":
"$$.Execution.Id"``) and it stays in the child's input; StepFlow does the same."""


class StartRefusedError(Exception):
    """StartExecution refused the start: ``code`` is the API's error code, ``message`` its text.

    (``StateMachineDoesNotExist``, ``ExecutionAlreadyExists``, ``InvalidName``,
    ``InvalidArn``, ``InvalidExecutionInput``, ``ValidationException``, ...)
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


@dataclass(frozen=True, slots=True)
class NestedStart:
    """One StartExecution asked for by a Task.

    ``input`` is the execution input as JSON text (StartExecution's ``input``);
    ``name`` None lets the starter choose one; ``caller`` is the waiting task
    (``{"arn", "task_id", "pattern"}``, ``.sync``/``.sync:2``) or None; ``principal``
    is whom the child is started as (the task's ``Credentials.RoleArn``, else the
    parent's execution role), recorded as the child's ``startedBy``.
    """

    state_machine_arn: str
    input: str
    name: str | None = None
    caller: dict[str, Any] | None = None
    principal: str = ""
    parent_arn: str = ""
    task_id: str = ""
    """The parent's task attempt: a re-run of the same attempt finds the child it started."""


@dataclass(frozen=True, slots=True)
class StartedExecution:
    """The execution a :class:`NestedStart` started (or found, started the same way)."""

    execution_arn: str
    start_date: float
    """Epoch seconds."""


class ExecutionStarter(Protocol):
    """Starts executions of this StepFlow for a Task (StartExecution's semantics)."""

    def start(self, request: NestedStart) -> StartedExecution:
        """Start ``request`` (idempotent by name and input); raises :class:`StartRefusedError`."""
        ...


def epoch_millis(epoch_seconds: float) -> int:
    """Epoch seconds as the SDK for Java v1 prints a date in an optimized integration's output."""
    return round(epoch_seconds * 1000)


def _parse_iso(text: str) -> float:
    """Epoch seconds of an engine timestamp (``2024-01-01T00:00:00.000Z``)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def describe_output(
    command: NotifyCaller, state: ExecutionState, state_machine_arn: str, now: float
) -> dict[str, Any]:
    """The child's end as AWS's ``.sync`` task sees it: DescribeExecution, PascalCase.

    ``.sync:2`` keeps ``Output`` as JSON; ``.sync`` as JSON text. A failed child has
    ``Error``/``Cause`` and no output (nor redrive fields, as AWS's cause shows).
    """
    machine = ":".join(state_machine_arn.split(":")[:7])
    described: dict[str, Any] = {
        "ExecutionArn": state.execution_arn,
        "Input": dumps(state.input),
        "InputDetails": {"Included": True},
        "Name": state.name,
        "StartDate": epoch_millis(_parse_iso(state.start_time)),
        "StateMachineArn": machine,
        "Status": command.status,
        "StopDate": epoch_millis(now),
    }
    if command.status == "SUCCEEDED":
        sync2 = command.caller.get("pattern") == "sync2"
        described["Output"] = command.output if sync2 else dumps(command.output)
        described["OutputDetails"] = {"Included": True}
        described["RedriveCount"] = state.redrive_count
        described["RedriveStatus"] = "NOT_REDRIVABLE"
        described["RedriveStatusReason"] = "Execution is SUCCEEDED and cannot be redriven"
    else:
        if command.error is not None:
            described["Error"] = command.error
        if command.cause is not None:
            described["Cause"] = command.cause
    return dict(sorted(described.items()))


def caller_message(
    command: NotifyCaller, state: ExecutionState, state_machine_arn: str, now: float
) -> Message:
    """The result of the caller's task, sent to the caller's execution.

    Its id is stable per end of the child (a redriven child ends again under a new
    id); the caller's engine ignores it once the task is closed, so a redelivery,
    or an end nobody waits for any more, is applied at most once.
    """
    described = describe_output(command, state, state_machine_arn, now)
    task_id = str(command.caller["task_id"])
    event: TaskSucceeded | TaskFailed
    if command.status == "SUCCEEDED":
        event = TaskSucceeded(task_id, described, external=True)
    else:
        # AWS: error States.TaskFailed, cause the describe object as JSON text.
        error = StatesErrorName.TASK_FAILED.value
        event = TaskFailed(task_id, error, dumps(described), external=True)
    message_id = f"{state.execution_arn}#caller#{state.redrive_count}"
    return Message(str(command.caller["arn"]), message_id, "event", encode_event(event))


def is_sync_child(command: CancelTask) -> bool:
    """True if ``command`` cancels a ``states:startExecution.sync`` task that started a child."""
    if not command.resource or not command.handle:
        return False
    info = describe(command.resource)
    return (
        info.service == SERVICE
        and info.action == ACTION
        and info.pattern in ("sync", "sync2")
        and isinstance(command.handle.get("ExecutionArn"), str)
    )


def stop_child_message(command: CancelTask, message_id: str) -> Message:
    """Stop the child execution a cancelled ``.sync`` task waits for (AWS aborts it)."""
    assert command.handle is not None
    child = str(command.handle["ExecutionArn"])
    return Message(child, message_id, "event", {"type": "Stop"})


def orphan_stops(events: list[Event], open_tasks: Container[str] | None) -> list[Message]:
    """Stops for the children that ``.sync`` attempts no longer open just started.

    A task's start can race its execution's end (StopExecution, a timeout): the child
    starts, then the attempt's ``TaskSubmitted`` finds the attempt closed and is ignored,
    so no ``CancelTask`` will ever name the child. ``open_tasks`` None: the execution
    has ended (every attempt is closed). Stopping an ended child changes nothing.
    """
    stops = []
    for event in events:
        if not isinstance(event, TaskSubmitted) or not event.handle:
            continue
        child = event.handle.get("ExecutionArn")
        if not isinstance(child, str) or ":execution:" not in child:
            continue
        if open_tasks is None or event.task_id not in open_tasks:
            message_id = f"{child}#orphan/{event.task_id}"
            stops.append(Message(child, message_id, "event", {"type": "Stop"}))
    return stops


def may_orphan(events: list[Event]) -> bool:
    """Whether ``events`` hold a ``.sync`` child's start (see :func:`orphan_stops`)."""
    return any(isinstance(e, TaskSubmitted) and e.handle for e in events)
