"""The issue-14 seam in the engine: CancelTask names what to stop, NotifyCaller fires once per end.

Every way a task can end early (Stop, its timeout, its heartbeat timeout, the
execution's timeout, a sibling branch failing, a Map iteration aborted) must
hand the runtime one ``CancelTask`` naming the task's resource and the handle
of the job it submitted, so a ``.sync`` child execution or job can be stopped.
An execution that a ``.sync`` task waits for (``ExecutionState.caller``) must
emit exactly one ``NotifyCaller`` each time it reaches a terminal status,
including after a redrive, and none otherwise.
"""

from __future__ import annotations

from typing import Any

from stepflow.asl import parse
from stepflow.engine import (
    CancelTask,
    ExecutionState,
    NotifyCaller,
    Redrive,
    RunTask,
    Start,
    StartTimer,
    Stop,
    TaskFailed,
    TaskSubmitted,
    TaskSucceeded,
    TimerFired,
    decide,
    new_execution,
)
from stepflow.engine.decide import Decider

SYNC = "arn:aws:states:::states:startExecution.sync:2"
TOKEN = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
FN = "arn:aws:lambda:us-east-1:123456789012:function:work"
CHILD = "arn:aws:states:us-east-1:123456789012:execution:child:"
CALLER = {"arn": "arn:aws:states:us-east-1:123456789012:execution:parent:p", "task_id": "t9"}


def _sync_task(**extra: Any) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": SYNC,
        "Parameters": {"StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:c"},
        **extra,
    }


def _machine(states: dict[str, Any], **top: Any) -> Any:
    return parse({"StartAt": next(iter(states)), "States": states, **top})


def _runs(decision: Any) -> list[RunTask]:
    return [c for c in decision.commands if isinstance(c, RunTask)]


def _cancels(decision: Any) -> list[CancelTask]:
    return [c for c in decision.commands if isinstance(c, CancelTask)]


def _notes(decision: Any) -> list[NotifyCaller]:
    return [c for c in decision.commands if isinstance(c, NotifyCaller)]


def _start(machine: Any, data: Any = None, caller: dict[str, Any] | None = None) -> Any:
    state: ExecutionState = new_execution(name="e", input=data or {}, now=0.0)
    state.caller = caller
    return decide(machine, state, Start(), 0.0)


def _submit(machine: Any, decision: Any, run: RunTask, n: int, at: float = 1.0) -> Any:
    handle = {"executionArn": f"{CHILD}{n}"}
    return decide(machine, decision.state, TaskSubmitted(run.task_id, {"n": n}, handle), at)


# --- CancelTask ----------------------------------------------------------------------------


def test_stop_cancels_the_submitted_child_execution_by_its_handle() -> None:
    machine = _machine({"T": _sync_task(End=True)})
    first = _start(machine)
    (run,) = _runs(first)
    submitted = _submit(machine, first, run, 1)
    stopped = decide(machine, submitted.state, Stop("Operator", "manual"), 2.0)
    assert _cancels(stopped) == [CancelTask(run.task_id, SYNC, {"executionArn": CHILD + "1"})]


def test_a_task_not_yet_submitted_is_cancelled_without_a_handle() -> None:
    machine = _machine({"T": _sync_task(End=True)})
    first = _start(machine)
    (run,) = _runs(first)
    stopped = decide(machine, first.state, Stop(), 2.0)
    assert _cancels(stopped) == [CancelTask(run.task_id, SYNC, None)]


def _timer_at(decision: Any, fire_at: float) -> StartTimer:
    (timer,) = [c for c in decision.commands if isinstance(c, StartTimer) and c.fire_at == fire_at]
    return timer


def test_the_task_timeout_cancels_the_job_once() -> None:
    machine = _machine({"T": _sync_task(TimeoutSeconds=30, End=True)})
    first = _start(machine)
    (run,) = _runs(first)
    timer = _timer_at(first, 30.0)
    submitted = _submit(machine, first, run, 1)
    timed_out = decide(machine, submitted.state, TimerFired(timer.timer_id), 30.0)
    assert timed_out.state.status == "FAILED"
    assert _cancels(timed_out) == [CancelTask(run.task_id, SYNC, {"executionArn": CHILD + "1"})]
    again = decide(machine, timed_out.state, TimerFired(timer.timer_id), 31.0)
    assert _cancels(again) == []


def test_the_heartbeat_timeout_cancels_the_job_and_a_retry_starts_without_its_handle() -> None:
    machine = _machine(
        {
            "T": {
                "Type": "Task",
                "Resource": TOKEN,
                "Parameters": {"QueueUrl": "q", "MessageBody": {"t.$": "$$.Task.Token"}},
                "HeartbeatSeconds": 10,
                "Retry": [{"ErrorEquals": ["States.HeartbeatTimeout"], "IntervalSeconds": 1}],
                "End": True,
            }
        }
    )
    first = _start(machine)
    (run,) = _runs(first)
    check = _timer_at(first, 10.0)
    submitted = decide(machine, first.state, TaskSubmitted(run.task_id, {}, {"msg": "m1"}), 1.0)
    lost = decide(machine, submitted.state, TimerFired(check.timer_id), 10.0)
    assert _cancels(lost) == [CancelTask(run.task_id, TOKEN, {"msg": "m1"})]
    # The retry's attempt has not submitted anything yet: stopping it names no handle.
    (backoff,) = [c for c in lost.commands if isinstance(c, StartTimer)]
    retried = decide(machine, lost.state, TimerFired(backoff.timer_id), backoff.fire_at)
    (second,) = _runs(retried)
    assert second.task_id != run.task_id
    stopped = decide(machine, retried.state, Stop(), 20.0)
    assert _cancels(stopped) == [CancelTask(second.task_id, TOKEN, None)]


def test_the_execution_timeout_cancels_the_job() -> None:
    machine = _machine({"T": _sync_task(End=True)}, TimeoutSeconds=100)
    first = _start(machine)
    (run,) = _runs(first)
    timer = _timer_at(first, 100.0)
    submitted = _submit(machine, first, run, 1)
    timed_out = decide(machine, submitted.state, TimerFired(timer.timer_id), 100.0)
    assert timed_out.state.status == "TIMED_OUT"
    assert _cancels(timed_out) == [CancelTask(run.task_id, SYNC, {"executionArn": CHILD + "1"})]


def test_a_failing_branch_cancels_its_siblings_jobs() -> None:
    machine = _machine(
        {
            "P": {
                "Type": "Parallel",
                "Branches": [
                    {
                        "StartAt": "A",
                        "States": {"A": {"Type": "Task", "Resource": FN, "End": True}},
                    },
                    {"StartAt": "B", "States": {"B": _sync_task(End=True)}},
                    {"StartAt": "C", "States": {"C": _sync_task(End=True)}},
                ],
                "End": True,
            }
        }
    )
    first = _start(machine)
    lam, sync_b, sync_c = _runs(first)
    assert lam.resource == FN
    b = _submit(machine, first, sync_b, 2)
    c = _submit(machine, b, sync_c, 3)
    failed = decide(machine, c.state, TaskFailed(lam.task_id, "Boom", "no"), 3.0)
    assert failed.state.status == "FAILED"
    assert sorted(_cancels(failed), key=lambda x: x.task_id) == sorted(
        [
            CancelTask(sync_b.task_id, SYNC, {"executionArn": CHILD + "2"}),
            CancelTask(sync_c.task_id, SYNC, {"executionArn": CHILD + "3"}),
        ],
        key=lambda x: x.task_id,
    )


def test_an_aborted_map_iteration_cancels_its_job_and_a_finished_one_is_left_alone() -> None:
    item = {"StartAt": "S", "States": {"S": _sync_task(End=True)}}
    machine = _machine({"M": {"Type": "Map", "ItemProcessor": item, "End": True}})
    first = _start(machine, [1, 2, 3])
    one, two, three = _runs(first)
    d1 = _submit(machine, first, one, 1)
    d2 = _submit(machine, d1, two, 2)
    d3 = _submit(machine, d2, three, 3)
    done = decide(machine, d3.state, TaskSucceeded(three.task_id, {}), 4.0)
    assert _cancels(done) == []
    failed = decide(machine, done.state, TaskFailed(one.task_id, "Boom", "no"), 5.0)
    assert failed.state.status == "FAILED"
    assert _cancels(failed) == [CancelTask(two.task_id, SYNC, {"executionArn": CHILD + "2"})]


def test_a_caught_map_failure_cancels_the_other_iterations_once() -> None:
    item = {"StartAt": "S", "States": {"S": _sync_task(End=True)}}
    machine = _machine(
        {
            "M": {
                "Type": "Map",
                "ItemProcessor": item,
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handled"}],
                "Next": "Handled",
            },
            "Handled": {"Type": "Pass", "End": True},
        }
    )
    first = _start(machine, [1, 2])
    one, two = _runs(first)
    d2 = _submit(machine, _submit(machine, first, one, 1), two, 2)
    caught = decide(machine, d2.state, TaskFailed(one.task_id, "Boom", "no"), 5.0)
    assert caught.state.status == "SUCCEEDED"
    assert _cancels(caught) == [CancelTask(two.task_id, SYNC, {"executionArn": CHILD + "2"})]
    late = decide(machine, caught.state, TaskSucceeded(two.task_id, {}), 6.0)
    assert _cancels(late) == [] and late.events == []


def test_cancel_task_for_an_unknown_task_does_not_borrow_the_root_frame() -> None:
    """The root frame's id is "": a lookup must not default to it for a task it does not hold."""
    machine = _machine({"T": _sync_task(End=True)})
    first = _start(machine)
    (run,) = _runs(first)
    submitted = _submit(machine, first, run, 1)
    decider = Decider(machine, submitted.state.copy(), 2.0, 100)
    decider.cancel_task("t-unknown")
    assert decider.commands == [CancelTask("t-unknown")]


# --- NotifyCaller ---------------------------------------------------------------------------


def _one_task(**top: Any) -> Any:
    return _machine({"T": {"Type": "Task", "Resource": FN, "End": True}}, **top)


def test_success_notifies_the_caller_once_with_the_output() -> None:
    machine = _one_task()
    first = _start(machine, caller=CALLER)
    assert _notes(first) == []
    (run,) = _runs(first)
    done = decide(machine, first.state, TaskSucceeded(run.task_id, {"r": 1}), 1.0)
    assert _notes(done) == [NotifyCaller(CALLER, "SUCCEEDED", {"r": 1}, None, None)]
    again = decide(machine, done.state, TaskSucceeded(run.task_id, {"r": 2}), 2.0)
    assert _notes(again) == []


def test_failure_stop_and_timeout_notify_once_each() -> None:
    machine = _one_task(TimeoutSeconds=50)
    first = _start(machine, caller=CALLER)
    (run,) = _runs(first)
    failed = decide(machine, first.state, TaskFailed(run.task_id, "Boom", "why"), 1.0)
    assert _notes(failed) == [NotifyCaller(CALLER, "FAILED", None, "Boom", "why")]
    assert _notes(decide(machine, failed.state, Stop(), 2.0)) == []

    stopped = decide(machine, first.state, Stop("Operator", "enough"), 1.0)
    assert _notes(stopped) == [NotifyCaller(CALLER, "ABORTED", None, "Operator", "enough")]
    assert _notes(decide(machine, stopped.state, Stop(), 2.0)) == []
    assert _notes(decide(machine, stopped.state, TaskSucceeded(run.task_id, 1), 2.0)) == []

    timer = _timer_at(first, 50.0)
    timed_out = decide(machine, first.state, TimerFired(timer.timer_id), 50.0)
    (note,) = _notes(timed_out)
    assert (note.caller, note.status) == (CALLER, "TIMED_OUT")
    assert _notes(decide(machine, timed_out.state, TimerFired(timer.timer_id), 51.0)) == []


def test_a_redriven_execution_notifies_again_when_it_ends_again() -> None:
    machine = _one_task()
    first = _start(machine, caller=CALLER)
    (run,) = _runs(first)
    failed = decide(machine, first.state, TaskFailed(run.task_id, "Boom", "why"), 1.0)
    assert len(_notes(failed)) == 1
    redriven = decide(machine, failed.state, Redrive(), 10.0)
    assert _notes(redriven) == []
    (rerun,) = _runs(redriven)
    done = decide(machine, redriven.state, TaskSucceeded(rerun.task_id, "ok"), 11.0)
    assert _notes(done) == [NotifyCaller(CALLER, "SUCCEEDED", "ok", None, None)]
    late = decide(machine, done.state, TaskSucceeded(run.task_id, "old"), 12.0)
    assert _notes(late) == []


def test_an_execution_nobody_waits_for_notifies_nobody() -> None:
    machine = _one_task()
    first = _start(machine)
    (run,) = _runs(first)
    assert _notes(decide(machine, first.state, TaskSucceeded(run.task_id, 1), 1.0)) == []
    assert _notes(decide(machine, first.state, Stop(), 1.0)) == []


def test_the_notification_carries_a_copy_of_the_caller() -> None:
    machine = _one_task()
    caller = dict(CALLER)
    first = _start(machine, caller=caller)
    (run,) = _runs(first)
    done = decide(machine, first.state, TaskSucceeded(run.task_id, 1), 1.0)
    (note,) = _notes(done)
    note.caller["arn"] = "changed"
    assert done.state.caller == CALLER


def test_a_pass_only_execution_notifies_on_its_first_decision() -> None:
    machine = _machine({"P": {"Type": "Pass", "End": True}})
    first = _start(machine, {"x": 1}, caller=CALLER)
    assert _notes(first) == [NotifyCaller(CALLER, "SUCCEEDED", {"x": 1}, None, None)]
