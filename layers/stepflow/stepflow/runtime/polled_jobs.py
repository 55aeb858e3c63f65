"""Stopping the jobs ``.sync`` tasks poll (ECS, Glue, Athena, Batch): the runtime's side.

A cancelled attempt's ``CancelTask`` names the job it started (its frame's handle) and
becomes one ``task`` message that stops it (:func:`job_cancel_message`). A job whose
start raced the end of its attempt (StopExecution, a timeout) is named by no
``CancelTask``: its ``TaskSubmitted`` arrives when the attempt is closed and the engine
ignores it; :func:`orphan_job_cancels` stops it from that event instead. Both messages
run under the attempt's one cancel lease (``<task_id>#cancel``), so a job is stopped once.

Pure functions: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Container

from stepflow.engine import CancelTask, Event, ExecutionState, TaskSubmitted
from stepflow.engine.resources import describe
from stepflow.runtime.messages import Message, cancel_body


def polled_job(command: CancelTask) -> bool:
    """True if ``command`` stops a job a ``.sync`` task polls (ECS, Glue, Athena, Batch...).

    Nested executions (``states:startExecution``) are stopped by their own branch.
    """
    if command.handle is None or not command.resource:
        return False
    info = describe(command.resource)
    return info.pattern in ("sync", "sync2") and info.service != "states"


def job_cancel_message(
    arn: str, message_id: str, command: CancelTask, state: ExecutionState
) -> Message:
    """The ``task`` message that stops a polled job, as the execution's role (run once)."""
    body = cancel_body(command, state.role_arn, state.role_arn)
    return Message(arn, message_id, "task", body)


def orphan_job_cancels(
    arn: str, events: list[Event], open_tasks: Container[str] | None, state: ExecutionState
) -> list[Message]:
    """Stops for the polled jobs that attempts no longer open just started.

    ``open_tasks`` None: the execution has ended (every attempt is closed). ``state`` is
    the execution's (its role stops the job, as for a ``CancelTask``).
    """
    stops = []
    for event in events:
        if not isinstance(event, TaskSubmitted) or not event.handle:
            continue
        if open_tasks is not None and event.task_id in open_tasks:
            continue
        command = CancelTask(event.task_id, event.resource, event.handle)
        if polled_job(command):
            stops.append(job_cancel_message(arn, f"{arn}#orphan/{event.task_id}", command, state))
    return stops
