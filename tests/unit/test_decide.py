"""The transition function itself: purity, fencing and idempotence of events."""

from __future__ import annotations

import copy

from stepflow.asl import parse
from stepflow.engine import (
    CancelTask,
    Complete,
    ContinueLater,
    RunTask,
    Start,
    StartTimer,
    Stop,
    TaskHeartbeat,
    TaskSucceeded,
    TimerFired,
    decide,
    new_execution,
)

FN = "arn:aws:lambda:us-east-1:123456789012:function:work"
TASK = parse(
    {
        "StartAt": "T",
        "States": {"T": {"Type": "Task", "Resource": FN, "TimeoutSeconds": 30, "End": True}},
    }
)


def started() -> tuple:
    state = new_execution(name="e1", input={"a": 1}, now=1000.0)
    decision = decide(TASK, state, Start(), 1000.0)
    run = next(c for c in decision.commands if isinstance(c, RunTask))
    timer = next(c for c in decision.commands if isinstance(c, StartTimer))
    return decision.state, run, timer


def test_decide_does_not_modify_the_state_it_is_given() -> None:
    state = new_execution(name="e1", input={"a": 1}, now=1000.0)
    before = copy.deepcopy(state)
    decide(TASK, state, Start(), 1000.0)
    assert state == before


def test_task_command_carries_input_and_timeout_timer() -> None:
    state, run, timer = started()
    assert run.input == {"a": 1} and run.timeout_seconds == 30
    assert timer.fire_at == 1030.0
    assert state.tasks == {run.task_id: ""}


def test_a_duplicate_result_is_acknowledged_without_effect() -> None:
    state, run, _ = started()
    first = decide(TASK, state, TaskSucceeded(run.task_id, "out"), 1001.0)
    assert isinstance(first.commands[-1], Complete)
    again = decide(TASK, first.state, TaskSucceeded(run.task_id, "other"), 1002.0)
    assert again.events == [] and again.commands == []
    assert again.state.output == "out"


def test_an_unknown_task_token_changes_nothing() -> None:
    state, _, _ = started()
    decision = decide(TASK, state, TaskSucceeded("t999", "forged"), 1001.0)
    assert decision.events == [] and decision.commands == [] and decision.state == state


def test_a_result_after_the_timeout_is_refused() -> None:
    state, run, timer = started()
    timed_out = decide(TASK, state, TimerFired(timer.timer_id), timer.fire_at)
    types = [e["type"] for e in timed_out.events]
    assert types == ["LambdaFunctionStarted", "LambdaFunctionTimedOut", "ExecutionFailed"]
    assert run.task_id in [c.task_id for c in timed_out.commands if isinstance(c, CancelTask)]
    late = decide(TASK, timed_out.state, TaskSucceeded(run.task_id, "late"), 2000.0)
    assert late.events == [] and late.state.status == "FAILED"


def test_a_stale_timer_after_success_is_ignored() -> None:
    state, run, timer = started()
    done = decide(TASK, state, TaskSucceeded(run.task_id, 1), 1001.0)
    stale = decide(TASK, done.state, TimerFired(timer.timer_id), timer.fire_at)
    assert stale.events == [] and stale.state.status == "SUCCEEDED"


def test_a_duplicate_start_is_ignored() -> None:
    state, _, _ = started()
    again = decide(TASK, state, Start(), 1001.0)
    assert again.events == [] and again.commands == []


def test_stop_aborts_and_cancels_open_tasks() -> None:
    state, run, _ = started()
    stopped = decide(TASK, state, Stop("Operator", "manual"), 1005.0)
    assert stopped.state.status == "ABORTED"
    assert stopped.events[-1]["type"] == "ExecutionAborted"
    assert run.task_id in [c.task_id for c in stopped.commands if isinstance(c, CancelTask)]


def test_the_budget_bounds_a_decision_and_continue_resumes() -> None:
    loop = parse(
        {
            "StartAt": "A",
            "States": {
                "A": {"Type": "Pass", "Next": "B"},
                "B": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.stop", "IsPresent": True, "Next": "Done"}],
                    "Default": "A",
                },
                "Done": {"Type": "Succeed"},
            },
        }
    )
    state = new_execution(name="e", input={}, now=0.0)
    decision = decide(loop, state, Start(), 0.0, budget=50)
    entered = [e for e in decision.events if e["type"].endswith("StateEntered")]
    assert len(entered) == 50
    assert decision.commands == [ContinueLater()]


HEARTBEAT = parse(
    {
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": "arn:aws:states:us-east-1:123456789012:activity:work",
                "HeartbeatSeconds": 10,
                "Catch": [{"ErrorEquals": ["States.HeartbeatTimeout"], "Next": "Lost"}],
                "End": True,
            },
            "Lost": {"Type": "Pass", "End": True},
        },
    }
)


def test_heartbeats_keep_a_task_alive_and_silence_times_it_out() -> None:
    state = new_execution(name="hb", input={}, now=0.0)
    first = decide(HEARTBEAT, state, Start(), 0.0)
    run = next(c for c in first.commands if isinstance(c, RunTask))
    check = next(c for c in first.commands if isinstance(c, StartTimer))
    assert (run.heartbeat_seconds, check.fire_at) == (10, 10.0)
    # GIVEN a heartbeat at t=5, WHEN the check at t=10 fires, THEN it re-arms for t=15
    beat = decide(HEARTBEAT, first.state, TaskHeartbeat(run.task_id), 5.0)
    rearmed = decide(HEARTBEAT, beat.state, TimerFired(check.timer_id), 10.0)
    assert rearmed.events == []
    (next_check,) = [c for c in rearmed.commands if isinstance(c, StartTimer)]
    assert next_check.fire_at == 15.0
    # WHEN nothing arrives by t=15 THEN the task fails with States.HeartbeatTimeout (caught)
    lost = decide(HEARTBEAT, rearmed.state, TimerFired(next_check.timer_id), 15.0)
    assert [e["type"] for e in lost.events][:2] == ["ActivityTimedOut", "TaskStateExited"]
    assert run.task_id in [c.task_id for c in lost.commands if isinstance(c, CancelTask)]
    assert lost.state.output == {
        "Error": "States.HeartbeatTimeout",
        "Cause": "No heartbeat arrived in time.",
    }


def test_consume_hands_the_state_over_and_decides_the_same() -> None:
    state = new_execution(name="e1", input={"a": 1}, now=1000.0)
    copied = decide(TASK, state, Start(), 1000.0)
    consumed = decide(TASK, state, Start(), 1000.0, consume=True)
    assert consumed.state is state
    assert consumed.state == copied.state and consumed.events == copied.events
