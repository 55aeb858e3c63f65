"""Handlers that take virtual time (``Delay``), callbacks left unanswered (``NO_ANSWER``),
and reading any state's input and output (``result.state`` / ``result.states``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from stepflow.engine.model import RunTask
from stepflow.testing import NO_ANSWER, Delay, WorkflowEnvironment, execute
from stepflow.testing.handlers import run_handler

START = 1_700_000_000
WORK = "arn:aws:lambda:us-east-1:123456789012:function:work"
SQS = "arn:aws:states:::sqs:sendMessage"
ACTIVITY = "arn:aws:states:us-east-1:123456789012:activity:review"


class Counted:
    def __init__(self, answer: Any) -> None:
        self.calls: list[Any] = []
        self.answer = answer

    def __call__(self, payload: Any) -> Any:
        self.calls.append(payload)
        return self.answer


def task(timeout: int | None = None, **extra: Any) -> dict[str, Any]:
    state: dict[str, Any] = {"Type": "Task", "Resource": WORK, "End": True, **extra}
    if timeout is not None:
        state["TimeoutSeconds"] = timeout
    return {"StartAt": "Work", "States": {"Work": state}}


def ended_at(result: Any) -> float:
    return float(result.history[-1]["timestamp"])


def test_a_handler_taking_longer_than_timeout_seconds_times_out_at_the_timeout() -> None:
    slow = Counted(Delay(300, {"done": True}))
    result = execute(task(60), {}, handlers={"work": slow}, start_time=START)
    assert (result.status, result.error) == ("FAILED", "States.Timeout")
    assert len(slow.calls) == 1
    assert ended_at(result) == pytest.approx(START + 60)


def test_a_handler_within_its_timeout_succeeds_when_its_time_has_passed() -> None:
    slow = Counted(Delay(300, {"done": True}))
    result = execute(task(600), {}, handlers={"work": slow}, start_time=START)
    assert result.status == "SUCCEEDED" and result.result == {"done": True}
    assert len(slow.calls) == 1
    assert ended_at(result) == pytest.approx(START + 300)


def test_a_delayed_exception_fails_the_task_after_the_delay_and_is_retried() -> None:
    answers = iter([Delay(30, TimeoutError("slow")), Delay(10, {"ok": 1})])
    calls: list[Any] = []

    def flaky(payload: Any) -> Any:
        calls.append(payload)
        return next(answers)

    retry = [{"ErrorEquals": ["TimeoutError"], "IntervalSeconds": 5, "MaxAttempts": 1}]
    result = execute(task(None, Retry=retry), {}, handlers={"work": flaky}, start_time=START)
    assert result.result == {"ok": 1} and len(calls) == 2
    assert ended_at(result) == pytest.approx(START + 30 + 5 + 10)


def test_an_exception_returned_plainly_is_a_value_that_is_not_json() -> None:
    returned = Counted(ValueError("boom"))
    result = execute(task(), {}, handlers={"work": returned})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "returned a value that is not JSON" in str(result.cause) and len(returned.calls) == 1
    delayed = execute(task(), {}, handlers={"work": Counted(Delay(1, ValueError("boom")))})
    assert (delayed.error, delayed.cause) == ("ValueError", "boom")  # Delay's: a failure


def test_a_delayed_lambda_invoke_result_is_wrapped_as_invoke_answers() -> None:
    invoke = {
        "StartAt": "W",
        "States": {
            "W": {
                "Type": "Task",
                "End": True,
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "w"},
            }
        },
    }
    result = execute(invoke, {}, handlers={"w": lambda _: Delay(5, {"a": 1})})
    assert result.result["Payload"] == {"a": 1} and result.result["StatusCode"] == 200


@pytest.mark.parametrize("bad", [Delay(-1), Delay(float("inf")), Delay(float("nan")), Delay("5")])  # type: ignore[arg-type]
def test_a_bad_delay_fails_the_task(bad: Delay) -> None:
    result = execute(task(), {}, handlers={"work": lambda _: bad})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "Delay seconds" in str(result.cause)


def test_no_answer_on_a_plain_task_says_what_to_use() -> None:
    result = execute(task(60), {}, handlers={"work": lambda _: NO_ANSWER})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "Delay(seconds, result)" in str(result.cause)


def test_delay_outside_the_virtual_clock_fails_naming_where_it_works() -> None:
    command = RunTask("t1", WORK, {}, "Work", None, None, None, "", "")
    outcome = run_handler({"work": lambda _: Delay(5, 1)}, command)
    assert not outcome.ok and "execute() and WorkflowEnvironment only" in str(outcome.cause)


def callback(heartbeat: int) -> dict[str, Any]:
    return {
        "StartAt": "Ask",
        "States": {
            "Ask": {
                "Type": "Task",
                "Resource": SQS + ".waitForTaskToken",
                "HeartbeatSeconds": heartbeat,
                "Parameters": {"QueueUrl": "q", "MessageBody": {"token.$": "$$.Task.Token"}},
                "End": True,
            }
        },
    }


def test_an_unanswered_callback_times_out_at_its_heartbeat() -> None:
    asked = Counted(NO_ANSWER)
    result = execute(callback(30), {}, handlers={SQS: asked}, start_time=START)
    assert (result.status, result.error) == ("FAILED", "States.HeartbeatTimeout")
    assert len(asked.calls) == 1 and "token" in asked.calls[0]["MessageBody"]
    assert ended_at(result) == pytest.approx(START + 30)


def test_an_unanswered_callback_lets_the_environment_run_on_to_the_timeout() -> None:
    env = WorkflowEnvironment(handlers={SQS: Counted(NO_ANSWER)}, start_time=START)
    arn = env.start(callback(45), {})
    env.run(arn)  # not stopped for the test: nobody is asked to answer
    assert env.describe(arn)["status"] == "FAILED" and env.now() == START + 45
    assert env.open_tasks() == []


def test_a_callback_answered_late_times_out_and_one_answered_in_time_succeeds() -> None:
    late = execute(callback(30), {}, handlers={SQS: Counted(Delay(40, {"ok": 1}))})
    assert late.error == "States.HeartbeatTimeout"
    asked = Counted(Delay(20, {"ok": 1}))
    on_time = execute(callback(30), {}, handlers={SQS: asked}, start_time=START)
    assert on_time.result == {"ok": 1} and len(asked.calls) == 1
    assert ended_at(on_time) == pytest.approx(START + 20)


def each(state: dict[str, Any]) -> dict[str, Any]:
    return {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemProcessor": {"StartAt": "One", "States": {"One": {**state, "End": True}}},
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Gave up"}],
                "End": True,
            },
            "Gave up": {"Type": "Succeed"},
        },
    }


def test_timed_out_tasks_leave_nothing_held() -> None:
    slow, silent = Counted(Delay(300, 1)), Counted(NO_ANSWER)
    env = WorkflowEnvironment(handlers={"work": slow, SQS: silent}, start_time=START)
    late = env.start(each(task(60)["States"]["Work"]), list(range(25)))
    asked = env.start(each(callback(30)["States"]["Ask"]), list(range(25)), state_machine="Ask")
    env.run_until_idle()
    assert (len(env.timing.pending), len(env.tasks.unanswered)) == (25, 25)
    env.run()
    assert (
        env.result(late).states_entered()[-1] == "Gave up" == env.result(asked).states_entered()[-1]
    )
    assert (len(slow.calls), len(silent.calls)) == (25, 25)
    assert (env.timing.pending, env.tasks.unanswered) == ({}, [])


def test_an_activity_worker_that_never_answers_times_out_at_the_heartbeat() -> None:
    definition = {
        "StartAt": "Review",
        "States": {
            "Review": {"Type": "Task", "Resource": ACTIVITY, "HeartbeatSeconds": 20, "End": True}
        },
    }
    worker = Counted(NO_ANSWER)
    result = execute(definition, {"doc": 1}, handlers={ACTIVITY: worker}, start_time=START)
    assert (result.status, result.error) == ("FAILED", "States.HeartbeatTimeout")
    assert worker.calls == [{"doc": 1}]


def test_an_activity_worker_taking_virtual_time_answers_later() -> None:
    definition = {
        "StartAt": "Review",
        "States": {
            "Review": {"Type": "Task", "Resource": ACTIVITY, "TimeoutSeconds": 100, "End": True}
        },
    }
    result = execute(
        definition, {}, handlers={ACTIVITY: lambda _: Delay(50, "ok")}, start_time=START
    )
    assert result.result == "ok" and ended_at(result) == pytest.approx(START + 50)


# -- result.state / result.states ---------------------------------------------------

MAP = {
    "StartAt": "Each",
    "States": {
        "Each": {
            "Type": "Map",
            "ItemProcessor": {
                "StartAt": "Double",
                "States": {"Double": {"Type": "Task", "Resource": WORK, "End": True}},
            },
            "End": True,
        }
    },
}


def test_states_lists_every_map_iteration_with_its_own_input_and_output() -> None:
    result = execute(MAP, [1, 2, 3], handlers={"work": lambda x: x * 10})
    runs = result.states("Double")
    assert [(r.input, r.output) for r in runs] == [(1, 10), (2, 20), (3, 30)]
    assert all(r.exited and r.type == "Task" for r in runs)
    assert result.state("Each").input == [1, 2, 3] and result.state("Each").output == [10, 20, 30]


def test_state_is_the_last_run_and_a_failed_state_has_no_output() -> None:
    loop = {
        "StartAt": "Count",
        "States": {
            "Count": {
                "Type": "Pass",
                "Parameters": {"n.$": "States.MathAdd($.n, 1)"},
                "Next": "Check",
            },
            "Check": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.n", "NumericGreaterThanEquals": 3, "Next": "Boom"}],
                "Default": "Count",
            },
            "Boom": {"Type": "Task", "Resource": WORK, "End": True},
        },
    }

    def boom(_: Any) -> Any:
        raise ValueError("no")

    result = execute(loop, {"n": 0}, handlers={"work": boom})
    assert [r.output for r in result.states("Count")] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert result.state("Count").output == {"n": 3}
    failed = result.state("Boom")
    assert failed.input == {"n": 3} and failed.output is None and not failed.exited


def test_state_names_the_entered_states_when_asked_for_another() -> None:
    result = execute(MAP, [1], handlers={"work": lambda x: x})
    with pytest.raises(KeyError, match=r"'Nope' was never entered.*Each, Double"):
        result.state("Nope")
    assert result.states("Nope") == []


def test_a_retried_task_run_lists_each_attempt_per_map_iteration() -> None:
    seen: dict[int, int] = {}

    def flaky(x: int) -> Any:
        seen[x] = seen.get(x, 0) + 1
        if x == 2 and seen[x] == 1:
            return Delay(60, x)  # the first attempt of item 2 times out
        if seen[x] <= x - 1:
            raise ValueError(f"try {seen[x]}")
        return Delay(x, x * 10)  # interleaves the iterations' events

    retry = [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 3}]
    work = {"Type": "Task", "Resource": WORK, "TimeoutSeconds": 30, "Retry": retry, "End": True}
    definition = json.loads(json.dumps(MAP))
    definition["States"]["Each"]["ItemProcessor"]["States"]["Double"] = work
    result = execute(definition, [1, 2, 3], handlers={"work": flaky})
    assert result.result == [10, 20, 30]
    runs = result.states("Double")
    assert [[a.status for a in r.attempts] for r in runs] == [
        ["SUCCEEDED"],
        ["TIMED_OUT", "SUCCEEDED"],
        ["FAILED", "FAILED", "SUCCEEDED"],
    ]
    assert [(a.input, a.error, a.cause) for a in runs[2].attempts[:2]] == [
        (3, "ValueError", "try 1"),
        (3, "ValueError", "try 2"),
    ]
    assert runs[1].attempts[0].error == "States.Timeout" and runs[2].attempts[2].output == 30
    assert sum(seen.values()) == 6 and result.state("Each").attempts == ()
