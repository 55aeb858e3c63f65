"""RedriveExecution in the engine: a stopped execution runs again from where it stopped."""

from __future__ import annotations

from typing import Any

from stepflow.asl import parse
from stepflow.engine import (
    Redrive,
    RunTask,
    Start,
    Stop,
    TaskFailed,
    TaskSucceeded,
    TimerFired,
    decide,
    new_execution,
)

FN = "arn:aws:lambda:us-east-1:123456789012:function:"
MACHINE = parse(
    {
        "StartAt": "Prepare",
        "TimeoutSeconds": 100,
        "States": {
            "Prepare": {"Type": "Pass", "Result": {"ready": True}, "Next": "Both"},
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}},
                    {
                        "StartAt": "Charge",
                        "States": {
                            "Charge": {"Type": "Task", "Resource": FN + "charge", "End": True}
                        },
                    },
                ],
                "Next": "Report",
            },
            "Report": {
                "Type": "Pass",
                "Parameters": {"redrives.$": "$$.Execution.RedriveCount", "result.$": "$[1]"},
                "End": True,
            },
        },
    }
)


def task(decision: Any) -> RunTask:
    return next(c for c in decision.commands if isinstance(c, RunTask))


def failed() -> Any:
    first = decide(MACHINE, new_execution(name="e", input={}, now=0.0), Start(), 0.0)
    return decide(MACHINE, first.state, TaskFailed(task(first).task_id, "Declined", "no"), 1.0)


def test_a_failed_execution_runs_again_from_the_failed_state() -> None:
    stopped = failed()
    assert stopped.state.status == "FAILED"
    again = decide(MACHINE, stopped.state, Redrive(), 10.0)
    types = [e["type"] for e in again.events]
    assert types[:2] == ["ExecutionRedriven", "ParallelStateEntered"]  # not Prepare again
    assert again.events[0]["executionRedrivenEventDetails"] == {"redriveCount": 1}
    assert again.events[0]["previousEventId"] == stopped.events[-1]["id"]
    done = decide(MACHINE, again.state, TaskSucceeded(task(again).task_id, "paid"), 11.0)
    assert done.state.status == "SUCCEEDED"
    assert done.state.output == {"redrives": 1, "result": "paid"}


def test_the_old_attempts_results_are_fenced_off_after_a_redrive() -> None:
    first = decide(MACHINE, new_execution(name="e", input={}, now=0.0), Start(), 0.0)
    old_task = task(first).task_id
    stopped = decide(MACHINE, first.state, TaskFailed(old_task, "Declined", "no"), 1.0)
    again = decide(MACHINE, stopped.state, Redrive(), 10.0)
    assert task(again).task_id != old_task
    late = decide(MACHINE, again.state, TaskSucceeded(old_task, "late"), 11.0)
    assert late.events == [] and late.state.status == "RUNNING"


def test_timed_out_and_aborted_executions_can_be_redriven_succeeded_ones_cannot() -> None:
    first = decide(MACHINE, new_execution(name="e", input={}, now=0.0), Start(), 0.0)
    timer = next(t for t, (_, kind) in first.state.timers.items() if kind == "execution")
    timed_out = decide(MACHINE, first.state, TimerFired(timer), 100.0)
    assert timed_out.state.status == "TIMED_OUT"
    assert decide(MACHINE, timed_out.state, Redrive(), 101.0).state.status == "RUNNING"
    aborted = decide(MACHINE, first.state, Stop(), 5.0)
    assert decide(MACHINE, aborted.state, Redrive(), 6.0).state.status == "RUNNING"
    done = decide(MACHINE, first.state, TaskSucceeded(task(first).task_id, "ok"), 2.0)
    assert done.state.status == "SUCCEEDED"
    assert decide(MACHINE, done.state, Redrive(), 3.0).events == []


def test_a_redrive_of_a_running_execution_changes_nothing() -> None:
    first = decide(MACHINE, new_execution(name="e", input={}, now=0.0), Start(), 0.0)
    again = decide(MACHINE, first.state, Redrive(), 1.0)
    assert again.events == [] and again.commands == [] and again.state == first.state
