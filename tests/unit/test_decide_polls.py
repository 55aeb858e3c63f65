"""The engine side of polled ``.sync`` tasks: durable poll timers, PollTask, TaskPending."""

from __future__ import annotations

from stepflow.asl import parse
from stepflow.engine import (
    CancelTask,
    ExecutionState,
    PollTask,
    RunTask,
    Start,
    StartTimer,
    Stop,
    TaskFailed,
    TaskPending,
    TaskSubmitted,
    TaskSucceeded,
    TimerFired,
    decide,
    new_execution,
)

GLUE = "arn:aws:states:::glue:startJobRun.sync"
MACHINE = parse(
    {
        "StartAt": "Job",
        "States": {
            "Job": {
                "Type": "Task",
                "Resource": GLUE,
                "Parameters": {"JobName": "etl"},
                "TimeoutSeconds": 600,
                "End": True,
            }
        },
    }
)
HANDLE = {"JobName": "etl", "RunId": "jr_1"}


def submitted() -> tuple[ExecutionState, str, StartTimer]:
    """An execution whose Glue job was started; the poll timer armed at +60 s."""
    state = new_execution(name="e1", input={}, now=1000.0)
    decision = decide(MACHINE, state, Start(), 1000.0)
    run = next(c for c in decision.commands if isinstance(c, RunTask))
    decision = decide(
        MACHINE, decision.state, TaskSubmitted(run.task_id, {"JobRunId": "jr_1"}, HANDLE, 60), 1001
    )
    (timer,) = [c for c in decision.commands if isinstance(c, StartTimer)]
    assert [e["type"] for e in decision.events] == ["TaskStarted", "TaskSubmitted"]
    return decision.state, run.task_id, timer


def polls(commands: list) -> list[PollTask]:
    return [c for c in commands if isinstance(c, PollTask)]


def test_a_submitted_job_arms_a_poll_timer_and_its_firing_asks_for_one_poll() -> None:
    state, task_id, timer = submitted()
    assert timer.fire_at == 1061.0
    assert state.timers[timer.timer_id][1] == f"poll:{task_id}"
    assert state.frames[""].handle == HANDLE
    fired = decide(MACHINE, state, TimerFired(timer.timer_id), 1061.0)
    (poll,) = polls(fired.commands)
    assert (poll.task_id, poll.resource, poll.handle, poll.poll_round) == (task_id, GLUE, HANDLE, 1)
    assert poll.state_name == "Job" and poll.role_arn == state.role_arn
    assert fired.events == []  # polls record no history
    again = decide(MACHINE, fired.state, TimerFired(timer.timer_id), 1062.0)
    assert polls(again.commands) == [] and again.events == []


def test_pending_rearms_once_and_replaces_the_handle() -> None:
    state, task_id, timer = submitted()
    state = decide(MACHINE, state, TimerFired(timer.timer_id), 1061.0).state
    newer = {**HANDLE, "StepFlowPolls": 1}
    pending = decide(MACHINE, state, TaskPending(task_id, 60.0, newer), 1062.0)
    (rearmed,) = [c for c in pending.commands if isinstance(c, StartTimer)]
    assert rearmed.fire_at == 1122.0 and pending.events == []
    assert pending.state.frames[""].handle == newer
    duplicate = decide(MACHINE, pending.state, TaskPending(task_id, 60.0, HANDLE), 1063.0)
    assert duplicate.commands == [] and duplicate.state.frames[""].handle == newer
    second = decide(MACHINE, pending.state, TimerFired(rearmed.timer_id), 1122.0)
    assert [p.poll_round for p in polls(second.commands)] == [2]


def test_the_end_of_the_job_drops_the_poll_timer_and_a_stale_poll_is_ignored() -> None:
    state, task_id, timer = submitted()
    done = decide(MACHINE, state, TaskSucceeded(task_id, {"JobRunState": "SUCCEEDED"}), 1030.0)
    assert done.state.status == "SUCCEEDED"
    assert [e["type"] for e in done.events][:1] == ["TaskSucceeded"]
    assert done.state.timers == {}
    late = decide(MACHINE, done.state, TimerFired(timer.timer_id), 1061.0)
    assert late.commands == [] and late.events == []
    pending = decide(MACHINE, done.state, TaskPending(task_id, 60.0), 1062.0)
    assert pending.commands == [] and pending.events == []


def test_a_failed_job_fails_the_state_as_aws() -> None:
    state, task_id, _ = submitted()
    failed = decide(MACHINE, state, TaskFailed(task_id, "States.TaskFailed", '{"Id":"jr_1"}'), 1070)
    assert failed.state.status == "FAILED"
    assert failed.state.error == "States.TaskFailed"


def test_the_timeout_cancels_the_job_with_its_handle() -> None:
    state, task_id, _ = submitted()
    timeout = next(t for t, (_, kind) in state.timers.items() if kind == f"timeout:{task_id}")
    timed_out = decide(MACHINE, state, TimerFired(timeout), 1600.0)
    assert timed_out.state.status == "FAILED" and timed_out.state.error == "States.Timeout"
    (cancel,) = [c for c in timed_out.commands if isinstance(c, CancelTask)]
    assert (cancel.task_id, cancel.resource, cancel.handle) == (task_id, GLUE, HANDLE)
    assert timed_out.state.timers == {}


def test_stop_cancels_the_job_once() -> None:
    state, task_id, timer = submitted()
    stopped = decide(MACHINE, state, Stop(), 1010.0)
    cancels = [c for c in stopped.commands if isinstance(c, CancelTask)]
    assert [(c.task_id, c.handle) for c in cancels] == [(task_id, HANDLE)]
    again = decide(MACHINE, stopped.state, Stop(), 1011.0)
    assert again.commands == []
    late = decide(MACHINE, stopped.state, TimerFired(timer.timer_id), 1061.0)
    assert late.commands == []


def test_a_submitted_task_without_poll_after_arms_no_poll() -> None:
    state = new_execution(name="e1", input={}, now=1000.0)
    decision = decide(MACHINE, state, Start(), 1000.0)
    run = next(c for c in decision.commands if isinstance(c, RunTask))
    quiet = decide(MACHINE, decision.state, TaskSubmitted(run.task_id, {}, HANDLE), 1001.0)
    assert [c for c in quiet.commands if isinstance(c, StartTimer)] == []
