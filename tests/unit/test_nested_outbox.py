"""The outbox side of nested executions: NotifyCaller and a cancelled ``.sync`` task (pure)."""

from __future__ import annotations

import json

from stepflow.engine import (
    CancelTask,
    ExecutionState,
    NotifyCaller,
    TaskFailed,
    TaskSucceeded,
    new_execution,
)
from stepflow.runtime.messages import decode_event
from stepflow.runtime.outbox import build_outbox

PARENT = "arn:aws:states:us-east-1:123456789012:execution:Parent:p"
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:Child:rev1"
R = "arn:aws:states:::states:startExecution"


def child_state(redrive_count: int = 0) -> ExecutionState:
    state = new_execution(name="c", input={"a": 1}, now=1000.0, state_machine_name="Child")
    state.redrive_count = redrive_count
    return state


def caller(pattern: str) -> dict[str, str]:
    return {"arn": PARENT, "task_id": "t7", "pattern": pattern}


def test_notify_caller_is_one_message_to_the_parent_with_a_stable_id() -> None:
    state = child_state()
    command = NotifyCaller(caller("sync2"), "SUCCEEDED", {"x": 1})
    (message,) = build_outbox(state.execution_arn, 5, [command], state, MACHINE, 2000.5)
    again = build_outbox(state.execution_arn, 9, [command], state, MACHINE, 2001.0)
    assert message.execution_arn == PARENT
    assert message.id == again[0].id == f"{state.execution_arn}#caller#0"
    event = decode_event(message.body)
    assert isinstance(event, TaskSucceeded)
    assert event.task_id == "t7"
    assert event.output["Output"] == {"x": 1}
    assert event.output["StartDate"] == 1_000_000
    assert event.output["StopDate"] == 2_000_500
    assert event.output["StateMachineArn"] == MACHINE.rsplit(":", 1)[0]  # no revision
    redriven = child_state(redrive_count=1)
    (later,) = build_outbox(redriven.execution_arn, 5, [command], redriven, MACHINE, 3000.0)
    assert later.id != message.id  # a redriven child's new end is a new message


def test_sync_output_is_json_text_and_a_failure_is_states_task_failed() -> None:
    state = child_state()
    ok = NotifyCaller(caller("sync"), "SUCCEEDED", {"x": 1})
    (message,) = build_outbox(state.execution_arn, 2, [ok], state, MACHINE, 2000.0)
    event = decode_event(message.body)
    assert isinstance(event, TaskSucceeded)
    assert event.output["Output"] == '{"x":1}'
    failed = NotifyCaller(caller("sync"), "TIMED_OUT", None, "States.Timeout", "late")
    (message,) = build_outbox(state.execution_arn, 2, [failed], state, MACHINE, 2000.0)
    event = decode_event(message.body)
    assert isinstance(event, TaskFailed)
    assert event.error == "States.TaskFailed"
    cause = json.loads(event.cause or "null")
    assert (cause["Status"], cause["Error"], cause["Cause"]) == (
        "TIMED_OUT",
        "States.Timeout",
        "late",
    )
    assert "Output" not in cause


def test_a_cancelled_sync_task_stops_its_child_and_nothing_else_does() -> None:
    state = child_state()
    child = "arn:aws:states:us-east-1:123456789012:execution:Child:k"
    handle = {"ExecutionArn": child}
    commands = [
        CancelTask("t1", R + ".sync:2", handle),
        CancelTask("t2", R + ".sync", handle),
        CancelTask("t3", R, None),
        CancelTask("t4", R + ".waitForTaskToken", None),
        CancelTask("t5", "arn:aws:states:::glue:startJobRun.sync", {"JobRunId": "j"}),
        CancelTask("t6"),
        CancelTask("t7", R + ".sync", {"ExecutionArn": 42}),
    ]
    messages = build_outbox(PARENT, 3, commands, state, MACHINE, 0.0)
    # The Glue job's stop is a polled job's cancel task (docs/integrations.md), not a Stop.
    [glue] = [m for m in messages if m.kind == "task"]
    assert glue.body["op"] == "cancel" and glue.body["task_id"] == "t5"
    stops = [(m.execution_arn, m.body) for m in messages if m.kind != "task"]
    assert stops == [(child, {"type": "Stop"}), (child, {"type": "Stop"})]
    assert len({m.id for m in messages}) == 3
