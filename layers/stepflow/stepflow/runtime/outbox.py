"""The messages a decision sends (its outbox), and the child executions they create.

Pure functions of a decision's commands, used by :class:`stepflow.runtime.stepper.Stepper`:
:func:`build_outbox` turns commands into messages with stable ids
(``<arn>#<seq of the commit>#<index>``), :func:`create_child` creates the
execution a ``child`` message describes, and :func:`send_all` sends messages in
batches (for ``OutboxSender.flush`` and the runner's tasks held in place, which
``repair`` imports, so it lives here).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

from stepflow.engine import (
    CancelChild,
    CancelMapRun,
    CancelTask,
    Command,
    ContinueLater,
    ExecutionState,
    NotifyCaller,
    NotifyParent,
    PollTask,
    RunTask,
    StartChild,
    StartMapRun,
    StartTimer,
    new_child_execution,
)
from stepflow.engine.codec import encode_state
from stepflow.runtime.map_run_state import map_run_message
from stepflow.runtime.messages import Message, encode_event, poll_body, task_body
from stepflow.runtime.nested import caller_message, is_sync_child, stop_child_message
from stepflow.runtime.polled_jobs import job_cancel_message, polled_job
from stepflow.runtime.ports import (
    CoordinationLog,
    ExecutionAlreadyExistsError,
    ExecutionRecord,
    MessageBus,
)

MAX_DELAY_SECONDS = 900
"""The longest delay a queue gives a message (SQS); longer waits re-arm themselves."""


def build_outbox(
    arn: str,
    seq: int,
    commands: list[Command],
    state: ExecutionState,
    machine_arn: str,
    now: float = 0.0,
) -> tuple[Message, ...]:
    """The messages of ``commands``; children run ``machine_arn``, their parent's revision.

    ``now`` is the commit's time (the stop date a waiting caller is told).
    """
    messages = []
    for i, command in enumerate(commands):
        message_id = f"{arn}#{seq}#{i}"
        if isinstance(command, StartChild):
            child = child_message(arn, message_id, command, state, machine_arn)
            messages.append(child)
        elif isinstance(command, CancelChild):
            messages.append(
                Message(child_arn(arn, command.child_id), message_id, "event", {"type": "Stop"})
            )
        elif isinstance(command, NotifyParent):
            done_id = f"{arn}#finished"
            messages.append(
                Message(command.parent_arn, done_id, "event", encode_event(command.event))
            )
        elif isinstance(command, RunTask):
            body = task_body(command)
            if state.parent and state.parent.get("arn"):  # cells keep the parent's versions
                body["parent_arn"] = str(state.parent["arn"])
            messages.append(Message(arn, message_id, "task", body))
        elif isinstance(command, PollTask):
            messages.append(Message(arn, message_id, "task", poll_body(command)))
        elif isinstance(command, CancelTask) and polled_job(command):
            messages.append(job_cancel_message(arn, message_id, command, state))
        elif isinstance(command, StartTimer):
            body = {"type": "TimerFired", "timer_id": command.timer_id}
            messages.append(Message(arn, message_id, "event", body, command.fire_at))
        elif isinstance(command, (StartMapRun, CancelMapRun)):
            messages.append(
                map_run_message(arn, message_id, command, machine_arn, state.redrive_count)
            )
        elif isinstance(command, ContinueLater):
            messages.append(Message(arn, message_id, "event", {"type": "Continue"}))
        elif isinstance(command, NotifyCaller):
            messages.append(caller_message(command, state, machine_arn, now))
        elif isinstance(command, CancelTask):
            messages.extend(nested_cancel(command, message_id))
    return tuple(messages)


def nested_cancel(command: CancelTask, message_id: str) -> list[Message]:
    """A cancelled ``states:startExecution.sync`` task stops its child (nothing otherwise)."""
    return [stop_child_message(command, message_id)] if is_sync_child(command) else []


def child_message(
    arn: str,
    message_id: str,
    command: StartChild,
    state: ExecutionState,
    machine_arn: str,
) -> Message:
    """The message that creates a child execution: its initial state, ready to start."""
    child = new_child_execution(state, arn, command)
    body = {
        "state": store_state(child),
        "input": command.input,
        # The exact revision or version the parent runs (its definition-cache key);
        # the unqualified ARN of the engine state names no stored definition.
        "state_machine_arn": machine_arn,
    }
    return Message(child_arn(arn, command.child_id), message_id, "child", body)


def create_child(log: CoordinationLog, message: Message, now: float) -> None:
    """Create the child execution of a ``child`` message (once; a duplicate is a no-op)."""
    body = message.body
    record = ExecutionRecord(
        execution_arn=message.execution_arn,
        state_machine_arn=str(body["state_machine_arn"]),
        name=message.execution_arn.rsplit("#", 1)[-1],
        input=body["input"],
        status="RUNNING",
        seq=0,
        state=dict(body["state"]),
        start_date=now,
    )
    # A redelivered message finds it created; the Start that follows is then a no-op.
    with contextlib.suppress(ExecutionAlreadyExistsError):
        log.create(record, [])


def child_arn(parent_arn: str, child_id: str) -> str:
    """The ARN of a child execution: its own partition in the log."""
    return f"{parent_arn}#{child_id.strip('/').replace('/', '.')}"


def store_state(state: ExecutionState) -> dict[str, Any]:
    """The state as stored: a child's copy of its root's input is left out.

    :meth:`stepflow.runtime.stepper.Stepper._load_state` puts it back on load.
    """
    if state.parent is None:
        return encode_state(state)
    data = encode_state(state)
    data["input"] = None
    return data


def delay(seconds: float) -> int:
    """``seconds`` as a queue delay: whole seconds, at least 0, at most the queue's limit."""
    return max(0, min(MAX_DELAY_SECONDS, math.ceil(seconds)))


def send_all(bus: MessageBus, messages: Sequence[tuple[Message, int]]) -> None:
    """Send each ``(message, delay_seconds)``: in batches when ``bus`` has ``send_batch``.

    A map run's commit sends up to a hundred child messages: one request per ten
    on SQS (SendMessageBatch) instead of one each. Raises like ``send`` if any is
    not accepted (the outbox then stays pending and is sent again, as a whole).
    """
    batch = getattr(bus, "send_batch", None)
    if batch is not None and len(messages) > 1:
        batch(messages)
        return
    for message, delay in messages:
        bus.send(message, delay)
