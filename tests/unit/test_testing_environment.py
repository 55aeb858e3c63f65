"""WorkflowEnvironment: time skipping, open callback and activity tasks, stop, children."""

from __future__ import annotations

from typing import Any

import pytest
from stepflow.activities import ActivityError
from stepflow.testing import (
    DeliveryError,
    WorkflowEnvironment,
    execute,
    open_environment,
)

START = 1_700_000_000.0
ACTIVITY = "arn:aws:states:us-east-1:123456789012:activity:review"
DOUBLE = "arn:aws:lambda:us-east-1:123456789012:function:double"
CALLBACK = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"


def _callback(**task: Any) -> dict[str, Any]:
    return {
        "StartAt": "Ask",
        "States": {
            "Ask": {
                "Type": "Task",
                "Resource": CALLBACK,
                "Parameters": {"QueueUrl": "q", "MessageBody": {"token.$": "$$.Task.Token"}},
                "End": True,
                **task,
            }
        },
    }


ACTIVITY_MACHINE = {
    "StartAt": "Review",
    "States": {"Review": {"Type": "Task", "Resource": ACTIVITY, "End": True}},
}


def test_a_callback_without_handler_stays_open_until_the_test_completes_it() -> None:
    assert execute(_callback(), {"a": 1}).status == "RUNNING"
    env = WorkflowEnvironment(start_time=START)
    arn = env.start(_callback(), {"a": 1})
    env.run(arn)
    [task] = env.open_tasks()
    assert (task.kind, task.state_name, task.execution_arn) == ("callback", "Ask", arn)
    assert task.input == {"QueueUrl": "q", "MessageBody": {"token": task.token}}
    env.complete(task.token, {"approved": True})
    result = env.result(arn)
    assert (result.status, result.result) == ("SUCCEEDED", {"approved": True})
    assert env.open_tasks() == []
    with pytest.raises(ActivityError) as refused:  # the task is closed: fenced
        env.complete(task.token, {"approved": False})
    assert refused.value.code == "TaskTimedOut"
    assert env.result(arn).result == {"approved": True}


def test_a_callback_failed_by_the_test_fails_the_execution() -> None:
    env = WorkflowEnvironment(start_time=START)
    arn = env.start(_callback())
    env.run(arn)
    env.fail(env.open_tasks()[0].token, "Rejected", "no budget")
    result = env.result(arn)
    assert (result.status, result.error, result.cause) == ("FAILED", "Rejected", "no budget")


def test_a_callback_handler_answers_through_send_task_success_and_failure() -> None:
    calls: list[Any] = []

    def approve(request: Any) -> Any:
        calls.append(request)
        return {"ok": len(calls)}

    result = execute(_callback(), handlers={CALLBACK: approve})
    assert (result.status, result.result, len(calls)) == ("SUCCEEDED", {"ok": 1}, 1)
    types = [e["type"] for e in result.history]
    assert types.count("TaskStarted") == 1 and types.count("TaskSucceeded") == 1

    def reject(_request: Any) -> Any:
        raise ValueError("nope")

    failed = execute(_callback(), handlers={CALLBACK: reject})
    assert (failed.status, failed.error, failed.cause) == ("FAILED", "ValueError", "nope")


def test_an_unanswered_callback_times_out_on_the_virtual_clock() -> None:
    result = execute(_callback(TimeoutSeconds=3600), start_time=None)
    assert (result.status, result.error) == ("FAILED", "States.Timeout")


def test_heartbeats_keep_a_callback_alive_and_their_absence_times_it_out() -> None:
    env = WorkflowEnvironment(start_time=START)
    arn = env.start(_callback(HeartbeatSeconds=10))
    env.run_until_idle()
    token = env.open_tasks()[0].token
    env.advance(8)
    env.heartbeat(token)
    env.advance(8)
    assert env.describe(arn)["status"] == "RUNNING"
    env.advance(3)
    assert (env.describe(arn)["status"], env.describe(arn)["error"]) == (
        "FAILED",
        "States.HeartbeatTimeout",
    )
    assert env.now() == START + 19


def test_advance_and_skip_to_the_next_timer() -> None:
    wait = {
        "StartAt": "W",
        "States": {
            "W": {"Type": "Wait", "Seconds": 60, "Next": "P"},
            "P": {"Type": "Pass", "End": True},
        },
    }
    env = WorkflowEnvironment(start_time=START)
    arn = env.start(wait)
    env.advance(30)
    assert env.describe(arn)["status"] == "RUNNING" and env.now() == START + 30
    assert env.skip_to_next_timer() == START + 60
    assert env.describe(arn)["status"] == "SUCCEEDED"
    assert env.skip_to_next_timer() is None


def test_an_activity_task_is_handed_to_the_test_and_fenced_after_its_lease() -> None:
    env = WorkflowEnvironment(start_time=START)
    arn = env.start(ACTIVITY_MACHINE, {"doc": 7})
    env.run(arn)
    [first] = env.open_tasks()
    assert (first.kind, first.input, first.resource) == ("activity", {"doc": 7}, ACTIVITY)
    assert env.open_tasks() == [first]  # not handed out again while its lease lives
    env.advance(61)  # the lease (60 s without HeartbeatSeconds) runs out
    [second] = env.open_tasks()
    assert second.token != first.token
    with pytest.raises(ActivityError) as refused:
        env.complete(first.token, "late")
    assert refused.value.code == "TaskTimedOut"
    env.complete(second.token, "done")
    assert env.result(arn).result == "done"
    types = [e["type"] for e in env.history(arn)]
    assert types.count("ActivityStarted") == 1 and types.count("ActivitySucceeded") == 1


def test_an_activity_handler_runs_once_per_task() -> None:
    calls: list[Any] = []

    def review(document: Any) -> Any:
        calls.append(document)
        return {"reviewed": document}

    result = execute(ACTIVITY_MACHINE, {"doc": 1}, handlers={ACTIVITY: review})
    assert (result.status, result.result, calls) == (
        "SUCCEEDED",
        {"reviewed": {"doc": 1}},
        [{"doc": 1}],
    )


def test_stop_aborts_the_execution_and_refuses_its_tokens() -> None:
    env = WorkflowEnvironment(start_time=START)
    arn = env.start(_callback())
    env.run(arn)
    token = env.open_tasks()[0].token
    env.stop(arn, error="Cancelled", cause="by the test")
    described = env.describe(arn)
    assert (described["status"], described["error"]) == ("ABORTED", "Cancelled")
    assert env.open_tasks() == []
    with pytest.raises(ActivityError):
        env.complete(token, {})


def _map(n: int) -> tuple[dict[str, Any], list[int]]:
    machine = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemProcessor": {
                    "StartAt": "Double",
                    "States": {"Double": {"Type": "Task", "Resource": DOUBLE, "End": True}},
                },
                "End": True,
            }
        },
    }
    return machine, list(range(n))


@pytest.mark.parametrize(("items", "children"), [(40, 0), (41, 41)])
def test_a_map_over_more_than_40_items_runs_child_executions(items: int, children: int) -> None:
    machine, values = _map(items)
    calls: list[int] = []
    env = WorkflowEnvironment(
        start_time=START, handlers={"double": lambda x: calls.append(x) or 2 * x}
    )
    arn = env.start(machine, values)
    env.run(arn)
    assert env.result(arn).result == [2 * v for v in values]
    assert sorted(calls) == values  # each item's task ran once
    assert sum(1 for m in env.bus.sent if m.kind == "child") == children


def test_callbacks_inside_child_executions_are_listed_under_the_parent() -> None:
    machine = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemProcessor": {"StartAt": "Ask", "States": _callback()["States"]},
                "End": True,
            }
        },
    }
    env = WorkflowEnvironment(start_time=START)
    arn = env.start(machine, list(range(45)))
    env.run(arn)
    tasks = env.open_tasks(arn)
    assert len(tasks) == 45 and all(t.execution_arn != arn for t in tasks)  # the iterations
    for i, task in enumerate(tasks):
        env.complete(task.token, i)
    env.run(arn)
    assert sorted(env.result(arn).result) == list(range(45))


def test_several_definitions_run_side_by_side_and_events_stream_live() -> None:
    seen: list[str] = []
    env = WorkflowEnvironment(start_time=START, on_event=lambda e: seen.append(e["type"]))
    first = env.start(
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": 1, "End": True}}},
        state_machine="one",
    )
    second = env.start(
        {"StartAt": "B", "States": {"B": {"Type": "Pass", "Result": 2, "End": True}}},
        state_machine="two",
    )
    env.run()
    assert (env.result(first).result, env.result(second).result) == (1, 2)
    assert env.describe(second)["stateMachineArn"].endswith(":stateMachine:two")
    assert seen == [e["type"] for e in env.history(first) + env.history(second)]
    with pytest.raises(ValueError):
        env.register({"StartAt": "C", "States": {"C": {"Type": "Succeed"}}}, "one")


def test_an_endless_loop_fails_at_the_event_cap() -> None:
    never = {"Variable": "$.never", "IsPresent": True, "Next": "Done"}
    loop = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Choice", "Choices": [never], "Default": "A"},
            "Done": {"Type": "Succeed"},
        },
    }
    result = execute(loop, max_events=5_000)
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert len(result.history) == 5_000


def test_the_moto_backend_answers_callbacks_the_same_way() -> None:
    with open_environment("moto", start_time=START) as env:
        arn = env.start(_callback(), {"a": 1})
        env.run(arn)
        [task] = env.open_tasks()
        env.complete(task.token, "yes")
        assert env.result(arn).result == "yes"
    assert execute(_callback(), durable=True, handlers={CALLBACK: lambda _: "yes"}).result == "yes"


def test_run_does_not_skip_time_past_a_task_waiting_for_the_test() -> None:
    env = WorkflowEnvironment(start_time=START)
    arn = env.start(_callback(TimeoutSeconds=3600))
    env.run(arn)
    assert env.describe(arn)["status"] == "RUNNING" and env.now() == START
    assert len(env.open_tasks()) == 1
    env.run(arn, skip_open_tasks=True)
    assert (env.describe(arn)["error"], env.now()) == ("States.Timeout", START + 3600)


def test_a_message_that_keeps_failing_raises_delivery_error_after_five_tries() -> None:
    attempts: list[str] = []

    def broken(_stepper: Any, batch: list[Any]) -> list[tuple[Any, Exception | None]]:
        attempts.extend(message.id for message in batch)
        return [(message, RuntimeError("stepper down")) for message in batch]

    wait = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 5, "End": True}}}
    env = WorkflowEnvironment(start_time=START, deliver=broken)
    arn = env.start(wait)
    with pytest.raises(DeliveryError, match="stepper down"):
        env.run(arn)
    assert len(attempts) == 5 and len(set(attempts)) == 1
    assert env.now() == START + 5 + 4 * 60  # redelivered every 60 virtual seconds


def test_an_activity_of_another_account_fails_as_a_missing_activity() -> None:
    other = ACTIVITY.replace("123456789012", "210987654321")
    machine = {"StartAt": "R", "States": {"R": {"Type": "Task", "Resource": other, "End": True}}}
    result = execute(machine, {}, handlers={other: lambda _: "never"})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "Activity Does Not Exist" in str(result.cause)


def test_a_handler_that_changes_its_input_changes_neither_the_definition_nor_the_history() -> None:
    # Its payload is the Pass's Result, shared with the parsed definition: a Lambda gets
    # its own copy, and so does a handler here.
    from stepflow.asl import parse
    from stepflow.testing import execute

    machine = parse(
        {
            "StartAt": "Fixed",
            "States": {
                "Fixed": {"Type": "Pass", "Result": {"k": [1]}, "Next": "Work"},
                "Work": {
                    "Type": "Task",
                    "Resource": "arn:aws:lambda:us-east-1:123456789012:function:work",
                    "ResultPath": None,
                    "End": True,
                },
            },
        }
    )

    def work(payload: dict[str, list[int]]) -> None:
        payload["k"].append(2)

    outputs = []
    for _ in range(2):
        result = execute(machine, {}, handlers={"work": work})
        assert result.status == "SUCCEEDED"
        outputs.append(result.output)
        exited = [e for e in result.history if e["type"] == "PassStateExited"]
        assert exited[0]["stateExitedEventDetails"]["output"] == '{"k":[1]}'
    assert outputs == ['{"k":[1]}'] * 2
