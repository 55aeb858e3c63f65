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
    StartTimer,
    TaskFailed,
    TaskSubmitted,
    TaskSucceeded,
    TimerFired,
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


def _timed(resource: str, then: dict[str, Any]) -> Any:
    """``T`` times out after 5 s; ``then`` handles the timeout (a Retry or a Catch)."""
    task = {"Type": "Task", "Resource": resource, "Parameters": {"a": 1}, "TimeoutSeconds": 5}
    task.update(then)
    later = {"Type": "Task", "Resource": resource, "Parameters": {"b": 2}, "End": True}
    return parse({"StartAt": "T", "States": {"T": task, "Later": later}})


def _fire(machine: Any, decision: Any, at: float) -> Any:
    """Fire the timers ``decision`` armed; the decision after the last."""
    for timer in [c for c in decision.commands if isinstance(c, StartTimer)]:
        decision = _step(machine, decision.state, TimerFired(timer.timer_id), at)
    return decision


@pytest.mark.parametrize(
    "then",
    [
        {
            "Retry": [{"ErrorEquals": ["States.Timeout"], "IntervalSeconds": 1}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Later"}],
            "End": True,
        },
        {"Catch": [{"ErrorEquals": ["States.Timeout"], "Next": "Later"}], "End": True},
    ],
    ids=["retry", "catch"],
)
@pytest.mark.parametrize("resource", [SYNC, TOKEN])
def test_a_held_result_dies_with_its_attempt(resource: str, then: dict[str, Any]) -> None:
    """An attempt that times out while holding an early result: the next task never sees it.

    The held result is the timed-out attempt's (its token, its child); the retry, or the
    Task state the Catch leads to, waits for its own (hostile review: it was applied to
    the next attempt as soon as that one's TaskSubmitted arrived).
    """
    machine = _timed(resource, then)
    decision, first = _started(machine)
    held = _step(machine, decision.state, TaskSucceeded(first, {"old": 1}, external=True), 1.0)
    timed_out = _step(machine, held.state, TimerFired(_timer(decision)), 6.0)
    nxt = _fire(machine, timed_out, 7.0)  # a retry's interval (none for the Catch)
    (run,) = [c for c in nxt.commands if isinstance(c, RunTask)]
    assert run.task_id != first
    submitted = TaskSubmitted(run.task_id, {"ExecutionArn": CHILD}, {"ExecutionArn": CHILD})
    after = _step(machine, nxt.state, submitted, 8.0)
    assert after.state.status == "RUNNING"  # waits for its own result
    assert _kinds(after.state).count("TaskSucceeded") == 0
    done = _step(machine, after.state, TaskSucceeded(run.task_id, {"new": 2}, external=True), 9.0)
    assert done.state.status == "SUCCEEDED"
    assert done.state.output == {"new": 2}


def _timer(decision: Any) -> str:
    (timer,) = [c for c in decision.commands if isinstance(c, StartTimer)]
    return str(timer.timer_id)
