"""Hook events from a real execution's history: kinds, states, order, dedup keys."""

from __future__ import annotations

from stepflow.hooks import ExecutionInfo, hook_events, kind_of
from stepflow.testing import execute


def test_kinds_of_history_event_types() -> None:
    assert kind_of("ExecutionStarted") == "ExecutionStarted"
    assert kind_of("PassStateEntered") == "StateEntered"
    assert kind_of("MapStateExited") == "StateExited"
    assert kind_of("LambdaFunctionScheduled") == "TaskScheduled"
    assert kind_of("ActivityTimedOut") == "TaskTimedOut"
    assert kind_of("TaskSubmitted") is None
    assert kind_of("TaskStateEntered") == "StateEntered"
    assert kind_of("MapIterationStarted") is None


def test_an_execution_s_hook_events_in_order_with_their_states() -> None:
    definition = {
        "StartAt": "Work",
        "States": {
            "Work": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Next": "Done"},
            "Done": {"Type": "Pass", "End": True},
        },
    }
    result = execute(definition, {"a": 1}, handlers={"arn:aws:states:::lambda:invoke": lambda x: x})
    info = ExecutionInfo("arn:aws:states:us-east-1:123456789012:execution:m:e")
    events = list(hook_events(info, result.history))
    assert [e.kind for e in events] == [
        "ExecutionStarted",
        "StateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskSucceeded",
        "StateExited",
        "StateEntered",
        "StateExited",
        "ExecutionSucceeded",
    ]
    assert [e.state_name for e in events] == [
        None, "Work", "Work", "Work", "Work", "Work", "Done", "Done", None
    ]  # fmt: skip
    assert len({e.dedup_key for e in events}) == len(events)
