"""A callback or a ``.sync`` child's end that arrives before the task's TaskSubmitted.

The runner reports TaskSubmitted after it sent the request; the child execution (or
the callback's sender) reports the result on another path, and the two can arrive in
either order. AWS's history always has TaskSubmitted first: the engine holds the early
result in the frame and applies it right after TaskSubmitted, once.
"""

from __future__ import annotations

from typing import Any

import pytest
from stepflow.asl import parse
from stepflow.engine import (
    ExecutionState,
    RunTask,
    Start,
    TaskFailed,
    TaskSubmitted,
    TaskSucceeded,
    decide,
    new_execution,
)

SYNC = "arn:aws:states:::states:startExecution.sync:2"
TOKEN = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
FN = "arn:aws:lambda:us-east-1:123456789012:function:work"
CHILD = "arn:aws:states:us-east-1:123456789012:execution:child:c1"


def _machine(resource: str) -> Any:
    task = {"Type": "Task", "Resource": resource, "Parameters": {"a": 1}, "End": True}
    return parse({"StartAt": "T", "States": {"T": task}})


def _started(machine: Any) -> tuple[Any, str]:
    state: ExecutionState = new_execution(name="e", input={}, now=0.0)
    decision = _step(machine, state, Start(), 0.0)
    (run,) = [c for c in decision.commands if isinstance(c, RunTask)]
    return decision, run.task_id


HISTORY: list[dict[str, Any]] = []


def _step(machine: Any, state: ExecutionState, event: Any, at: float) -> Any:
    decision = decide(machine, state, event, at)
    HISTORY.extend(decision.events)
    return decision


def _kinds(_: ExecutionState) -> list[str]:
    return [str(e["type"]) for e in HISTORY if str(e["type"]).startswith("Task")]


@pytest.fixture(autouse=True)
def _fresh_history() -> None:
    HISTORY.clear()


@pytest.mark.parametrize("resource", [SYNC, TOKEN])
def test_an_early_success_waits_for_task_submitted(resource: str) -> None:
    machine = _machine(resource)
    decision, task_id = _started(machine)
    early = _step(machine, decision.state, TaskSucceeded(task_id, {"r": 1}, external=True), 1.0)
    assert early.state.status == "RUNNING"
    assert "TaskSucceeded" not in _kinds(early.state)
    again = _step(machine, early.state, TaskSucceeded(task_id, {"r": 2}, external=True), 1.5)
    submitted = TaskSubmitted(task_id, {"ExecutionArn": CHILD}, {"ExecutionArn": CHILD})
    done = _step(machine, again.state, submitted, 2.0)
    assert done.state.status == "SUCCEEDED"
    assert _kinds(done.state) == [
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskSubmitted",
        "TaskSucceeded",
        "TaskStateExited",
    ]
    assert done.state.output == {"r": 1}  # the first result; the duplicate is ignored
    assert _kinds(done.state).count("TaskSucceeded") == 1


def test_an_early_failure_of_the_child_waits_too() -> None:
    machine = _machine(SYNC)
    decision, task_id = _started(machine)
    failed = TaskFailed(task_id, "States.TaskFailed", '{"Status":"FAILED"}', external=True)
    early = _step(machine, decision.state, failed, 1.0)
    assert early.state.status == "RUNNING"
    submitted = TaskSubmitted(task_id, {"ExecutionArn": CHILD}, {"ExecutionArn": CHILD})
    done = _step(machine, early.state, submitted, 2.0)
    assert done.state.status == "FAILED"
    assert _kinds(done.state).index("TaskSubmitted") < _kinds(done.state).index("TaskFailed")


def test_the_runners_own_failure_is_not_held() -> None:
    """The start was refused: the runner's TaskFailed ends the task without TaskSubmitted."""
    machine = _machine(SYNC)
    decision, task_id = _started(machine)
    refused = TaskFailed(task_id, "StepFunctions.ExecutionAlreadyExistsException", "exists")
    done = _step(machine, decision.state, refused, 1.0)
    assert done.state.status == "FAILED"
    assert "TaskSubmitted" not in _kinds(done.state)


def test_a_runners_result_for_a_mocked_sync_task_is_not_held() -> None:
    """A mocked ``.sync`` task's runner answers with the result itself (no TaskSubmitted)."""
    machine = _machine(SYNC)
    decision, task_id = _started(machine)
    done = _step(machine, decision.state, TaskSucceeded(task_id, {"m": 1}), 1.0)
    assert done.state.status == "SUCCEEDED"


def test_a_request_response_task_never_holds() -> None:
    machine = _machine(FN)
    decision, task_id = _started(machine)
    done = _step(machine, decision.state, TaskSucceeded(task_id, 7, external=True), 1.0)
    assert done.state.status == "SUCCEEDED"
