"""Nested executions (``states:startExecution``) in memory, through the runtime's Stepper.

:class:`stepflow.testing.WorkflowEnvironment` starts children through the API's own
StartExecution (:mod:`stepflow.api.nested`), as a deployment does; the ``.sync`` end
arrives through the outbox (:mod:`stepflow.runtime.nested`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from stepflow.api import nested as api_nested
from stepflow.api.nested import ApiExecutionStarter
from stepflow.runtime import Message
from stepflow.runtime.nested import NestedStart, StartRefusedError
from stepflow.runtime.outcome import TaskOutcome
from stepflow.testing import WorkflowEnvironment

R = "arn:aws:states:::states:startExecution"
ROLE = "arn:aws:iam::123456789012:role/ChildStarter"

CHILD_OK = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"x": 1}, "End": True}}}
CHILD_FAILS = {
    "StartAt": "F",
    "States": {
        "F": {
            "Type": "Fail",
            "Error": "SomeFailure",
            "Cause": "This state machines raises a 'SomeFailure' failure.",
        }
    },
}
CHILD_WAITS = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 100, "End": True}}}


def parent(pattern: str, arguments: dict[str, Any], **task: Any) -> dict[str, Any]:
    """A parent whose one Task starts an execution with ``pattern``."""
    state = {"Type": "Task", "Resource": R + pattern, "Parameters": arguments, "End": True}
    return {"StartAt": "Start", "States": {"Start": {**state, **task}}}


def run(env: WorkflowEnvironment, definition: dict[str, Any], name: str = "Parent") -> str:
    arn = env.start(env.register(definition, name), {"n": 1})
    env.run(arn)
    return arn


def types(env: WorkflowEnvironment, arn: str) -> list[str]:
    return [e["type"] for e in env.history(arn)]


def executions(env: WorkflowEnvironment, machine: str) -> list[dict[str, Any]]:
    listed = env.api.call("ListExecutions", {"stateMachineArn": machine})
    return list(listed["executions"])


def test_request_response_returns_arn_and_start_date_and_the_child_runs() -> None:
    env = WorkflowEnvironment()
    child = env.register(CHILD_OK, "Child")
    arn = run(env, parent("", {"StateMachineArn": child, "Input": {"a": 1}, "Name": "kid"}))
    output = json.loads(env.result(arn).output or "null")
    assert list(output) == [  # as AWS's recorded output
        "ExecutionArn",
        "SdkHttpMetadata",
        "SdkResponseMetadata",
        "StartDate",
    ]
    assert output["SdkHttpMetadata"]["HttpStatusCode"] == 200
    assert output["ExecutionArn"].endswith(":execution:Child:kid")
    assert isinstance(output["StartDate"], int)  # epoch milliseconds, as the SDK for Java
    (listed,) = executions(env, child)  # a real top-level execution
    assert listed["executionArn"] == output["ExecutionArn"]
    described = env.api.call("DescribeExecution", {"executionArn": output["ExecutionArn"]})
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["input"]) == {"a": 1}  # nothing added to the input
    assert "TaskSubmitted" not in types(env, arn)


@pytest.mark.parametrize("pattern", [".sync", ".sync:2"])
def test_sync_waits_for_the_child_and_returns_describe_execution(pattern: str) -> None:
    env = WorkflowEnvironment()
    child = env.register(CHILD_OK, "Child")
    arn = run(env, parent(pattern, {"StateMachineArn": child, "Input": {"a": 1}}))
    result = env.result(arn)
    assert result.status == "SUCCEEDED"
    output = json.loads(result.output or "null")
    assert output["Output"] == ({"x": 1} if pattern == ".sync:2" else '{"x":1}')
    assert output["Status"] == "SUCCEEDED"
    assert output["Input"] == '{"a":1}'
    assert output["StateMachineArn"] == child
    assert set(output) == {
        "ExecutionArn",
        "Input",
        "InputDetails",
        "Name",
        "Output",
        "OutputDetails",
        "RedriveCount",
        "RedriveStatus",
        "RedriveStatusReason",
        "StartDate",
        "StateMachineArn",
        "Status",
        "StopDate",
    }
    assert types(env, arn) == [
        "ExecutionStarted",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskSubmitted",
        "TaskSucceeded",
        "TaskStateExited",
        "ExecutionSucceeded",
    ]
    assert len(executions(env, child)) == 1  # started once


def test_a_failed_child_fails_the_task_with_the_describe_object_as_cause() -> None:
    env = WorkflowEnvironment()
    child = env.register(CHILD_FAILS, "Child")
    arn = run(env, parent(".sync", {"StateMachineArn": child, "Input": None, "Name": "T"}))
    result = env.result(arn)
    assert (result.status, result.error) == ("FAILED", "States.TaskFailed")
    cause = json.loads(result.cause or "null")
    assert list(cause) == [  # the keys of AWS's recorded cause, in its order
        "Cause",
        "Error",
        "ExecutionArn",
        "Input",
        "InputDetails",
        "Name",
        "StartDate",
        "StateMachineArn",
        "Status",
        "StopDate",
    ]
    assert cause["Error"] == "SomeFailure"
    assert cause["Input"] == "{}"  # Input null starts the child with {}
    assert cause["Status"] == "FAILED"
    assert types(env, arn)[-3:] == ["TaskSubmitted", "TaskFailed", "ExecutionFailed"]


def test_timed_out_and_aborted_children_fail_the_task_with_their_status() -> None:
    env = WorkflowEnvironment()
    slow = {**CHILD_WAITS, "TimeoutSeconds": 5}
    child = env.register(slow, "Slow")
    arn = run(env, parent(".sync:2", {"StateMachineArn": child}))
    assert json.loads(env.result(arn).cause or "null")["Status"] == "TIMED_OUT"

    waiting = env.register(CHILD_WAITS, "Waits")
    arn = env.start(env.register(parent(".sync:2", {"StateMachineArn": waiting}), "P2"), {})
    env.run_until_idle()
    (kid,) = executions(env, waiting)
    env.stop(kid["executionArn"])
    env.run(arn)
    result = env.result(arn)
    assert result.error == "States.TaskFailed"
    assert json.loads(result.cause or "null")["Status"] == "ABORTED"


@pytest.mark.parametrize("how", ["stop", "timeout"])
def test_ending_the_parent_stops_its_sync_child_once(how: str) -> None:
    env = WorkflowEnvironment()
    waiting = env.register(CHILD_WAITS, "Waits")
    task = {"TimeoutSeconds": 10} if how == "timeout" else {}
    arn = env.start(env.register(parent(".sync", {"StateMachineArn": waiting}, **task)), {})
    env.run_until_idle()
    (kid,) = executions(env, waiting)
    if how == "stop":
        env.stop(arn)
    else:
        env.run(arn)
        assert env.result(arn).error == "States.Timeout"
    env.run(kid["executionArn"])
    child = env.result(kid["executionArn"])
    assert child.status == "ABORTED"
    assert [e["type"] for e in child.history].count("ExecutionAborted") == 1
    env.run()
    assert env.result(arn).status == ("ABORTED" if how == "stop" else "FAILED")


def test_a_request_response_child_is_not_stopped_with_its_parent() -> None:
    env = WorkflowEnvironment()
    waiting = env.register(CHILD_WAITS, "Waits")
    flow = {
        "StartAt": "Start",
        "States": {
            "Start": {
                "Type": "Task",
                "Resource": R,
                "Parameters": {"StateMachineArn": waiting},
                "Next": "Hold",
            },
            "Hold": {"Type": "Wait", "Seconds": 50, "End": True},
        },
    }
    arn = env.start(env.register(flow), {})
    env.run_until_idle()
    env.stop(arn)
    (kid,) = executions(env, waiting)
    assert kid["status"] == "RUNNING"


def test_the_childs_end_delivered_twice_is_applied_once() -> None:
    env = WorkflowEnvironment()
    sent: list[Message] = []
    send = env.bus.send

    def twice(message: Message, delay: int = 0) -> None:
        send(message, delay)
        if "#caller#" in message.id:
            sent.append(message)
            send(message, delay)  # a redelivery

    env.bus.send = twice  # type: ignore[method-assign]
    child = env.register(CHILD_OK, "Child")
    arn = run(env, parent(".sync:2", {"StateMachineArn": child}))
    assert len(sent) == 1
    history = types(env, arn)
    assert history.count("TaskSucceeded") == 1
    assert history.count("TaskStateExited") == 1
    send(sent[0], 0)  # and once more, after the parent ended
    env.run_until_idle()
    assert types(env, arn) == history


def test_wait_for_task_token_child_answers_with_the_token() -> None:
    env = WorkflowEnvironment()
    child = env.register(CHILD_OK, "Child")
    flow = parent(
        ".waitForTaskToken",
        {"StateMachineArn": child, "Input": {"token.$": "$$.Task.Token"}},
    )
    arn = run(env, flow)
    assert env.result(arn).status == "RUNNING"
    (kid,) = executions(env, child)
    described = env.api.call("DescribeExecution", {"executionArn": kid["executionArn"]})
    token = json.loads(described["input"])["token"]
    env.complete(token, {"answer": 42})
    env.run(arn)
    assert json.loads(env.result(arn).output or "null") == {"answer": 42}
    assert "TaskSubmitted" in types(env, arn)


def test_no_such_state_machine_fails_as_aws_names_it() -> None:
    env = WorkflowEnvironment()
    missing = "arn:aws:states:us-east-1:123456789012:stateMachine:Nope"
    arn = run(env, parent("", {"StateMachineArn": missing, "Input": None, "Name": "T"}))
    result = env.result(arn)
    assert result.error == "StepFunctions.StateMachineDoesNotExistException"
    assert (result.cause or "").startswith(
        f"State Machine Does Not Exist: '{missing}' (Service: AWSStepFunctions; "
        "Status Code: 400; Error Code: StateMachineDoesNotExist; Request ID: "
    )
    assert (result.cause or "").endswith("; Proxy: null)")
    assert types(env, arn) == [
        "ExecutionStarted",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskFailed",
        "ExecutionFailed",
    ]


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"StateMachineArn": 42}, "States.Runtime"),
        ({"StateMachineArn": None}, "StepFunctions.ValidationException"),
        ({"StateMachineArn": "arn:" + "x" * 5000}, "StepFunctions.ValidationException"),
        (
            {"StateMachineArn": "arn:aws:states:us-east-1:999999999999:stateMachine:Child"},
            "StepFunctions.InvalidArnException",
        ),
        (  # the stack's own resources are no state machines
            {"StateMachineArn": "arn:aws:dynamodb:us-east-1:123456789012:table/stepflow"},
            "StepFunctions.InvalidArnException",
        ),
        ({"StateMachineArn": "CHILD", "Input": "not json"}, "StepFunctions.InvalidExecution"),
        ({"StateMachineArn": "CHILD", "Name": "bad name"}, "StepFunctions.InvalidName"),
        ({"StateMachineArn": "CHILD", "Input": "x" * 300_000}, "StepFunctions.InvalidExecution"),
    ],
)
def test_hostile_parameters_fail_the_task_and_start_nothing(
    arguments: dict[str, Any], error: str
) -> None:
    env = WorkflowEnvironment()
    child = env.register(CHILD_OK, "Child")
    given = {k: (child if v == "CHILD" else v) for k, v in arguments.items()}
    arn = run(env, parent(".sync:2", given))
    result = env.result(arn)
    assert result.status == "FAILED"
    assert (result.error or "").startswith(error)
    assert executions(env, child) == []


def test_a_name_reused_after_the_child_ended_is_execution_already_exists() -> None:
    env = WorkflowEnvironment()
    child = env.register(CHILD_OK, "Child")
    flow = env.register(parent(".sync", {"StateMachineArn": child, "Name": "fixed"}))
    first = env.start(flow, {})
    env.run(first)
    assert env.result(first).status == "SUCCEEDED"
    second = env.start(flow, {})
    env.run(second)
    assert env.result(second).error == "StepFunctions.ExecutionAlreadyExistsException"
    assert len(executions(env, child)) == 1


def test_a_workflow_that_starts_itself_ends_at_the_nesting_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(api_nested, "MAX_NESTING_DEPTH", 4)
    env = WorkflowEnvironment()
    me = "arn:aws:states:us-east-1:123456789012:stateMachine:Loop"
    loop = env.register(parent(".sync:2", {"StateMachineArn": me}), "Loop")
    arn = env.start(loop, {})
    env.run()
    started = executions(env, loop)
    assert len(started) == 5  # the first and four nested ones
    deepest = [e for e in started if e["status"] == "FAILED"]
    assert len(deepest) == 5  # the deepest is refused; each caller fails in turn
    result = env.result(arn)
    assert result.error == "States.TaskFailed"
    assert "ExecutionLimitExceeded" in (result.cause or "")


def test_the_child_is_started_as_the_tasks_role_and_names_its_parent() -> None:
    env = WorkflowEnvironment()
    child = env.register(CHILD_OK, "Child")
    flow = parent(".sync:2", {"StateMachineArn": child}, Credentials={"RoleArn": ROLE})
    arn = run(env, flow)
    (kid,) = executions(env, child)
    described = env.api.call("DescribeExecution", {"executionArn": kid["executionArn"]})
    assert described["startedBy"] == ROLE
    assert env.result(arn).status == "SUCCEEDED"


def test_redriving_the_parent_starts_a_new_child() -> None:
    calls: list[Any] = []

    def flaky(value: Any) -> Any:
        calls.append(value)
        if len(calls) == 1:
            raise RuntimeError("first time")
        return {"ok": True}

    env = WorkflowEnvironment(handlers={"flaky": flaky})
    lam = "arn:aws:states:::lambda:invoke"
    child_def = {
        "StartAt": "L",
        "States": {
            "L": {
                "Type": "Task",
                "Resource": lam,
                "Parameters": {"FunctionName": "flaky", "Payload": {}},
                "End": True,
            }
        },
    }
    child = env.register(child_def, "Child")
    arn = run(env, parent(".sync:2", {"StateMachineArn": child}))
    assert env.result(arn).status == "FAILED"
    env.stepper.redrive_execution(arn)
    env.run(arn)
    assert env.result(arn).status == "SUCCEEDED"
    statuses = sorted(e["status"] for e in executions(env, child))
    assert statuses == ["FAILED", "SUCCEEDED"]  # a new child; the failed one stays as it was
    assert len(calls) == 2


def test_a_sync_task_has_a_token_that_send_task_success_answers() -> None:
    env = WorkflowEnvironment()
    waiting = env.register(CHILD_WAITS, "Waits")
    flow = parent(
        ".sync",
        {"StateMachineArn": waiting, "Input": {"TaskToken.$": "$$.Task.Token"}},
    )
    arn = env.start(env.register(flow), {})
    env.run_until_idle()
    (kid,) = executions(env, waiting)
    described = env.api.call("DescribeExecution", {"executionArn": kid["executionArn"]})
    env.complete(json.loads(described["input"])["TaskToken"], "SQS_SEND_MESSAGE_AND_WAIT")
    env.run(arn)
    result = env.result(arn)
    assert (result.status, result.output) == ("SUCCEEDED", '"SQS_SEND_MESSAGE_AND_WAIT"')
    assert env.result(kid["executionArn"]).status == "RUNNING"  # answered: not cancelled


def test_an_environment_with_its_own_invoker_can_still_nest() -> None:
    def refuse(body: dict[str, Any]) -> TaskOutcome:
        return TaskOutcome.failed("Refused", str(body.get("resource")))

    env = WorkflowEnvironment(invoker=refuse, nested=True)
    child = env.register(CHILD_OK, "Child")
    arn = run(env, parent(".sync:2", {"StateMachineArn": child}))
    assert env.result(arn).status == "SUCCEEDED"
    plain = WorkflowEnvironment(invoker=refuse)  # the invoker decides
    child = plain.register(CHILD_OK, "Child")
    arn = run(plain, parent(".sync:2", {"StateMachineArn": child}))
    assert plain.result(arn).error == "Refused"


def test_a_redriven_task_with_a_fixed_name_collides_with_its_old_child() -> None:
    env = WorkflowEnvironment()
    child = env.register(CHILD_FAILS, "Child")
    arn = run(env, parent(".sync:2", {"StateMachineArn": child, "Name": "fixed"}))
    assert env.result(arn).error == "States.TaskFailed"
    env.stepper.redrive_execution(arn)
    env.run(arn)
    # As StartExecution answers a closed execution's name on AWS: the old child is not rerun.
    assert env.result(arn).error == "StepFunctions.ExecutionAlreadyExistsException"
    (kid,) = executions(env, child)
    assert kid["status"] == "FAILED"


def test_a_rerun_of_the_same_task_attempt_gets_its_child_back() -> None:
    env = WorkflowEnvironment()
    child = env.register(CHILD_OK, "Child")
    starter = ApiExecutionStarter(lambda: env.api.executions, lambda: env.api.limits)
    parent_arn = "arn:aws:states:us-east-1:123456789012:execution:Parent:p"
    request = NestedStart(child, "{}", "kid", None, ROLE, parent_arn, "t1")
    first = starter.start(request)
    env.run(first.execution_arn)
    assert env.result(first.execution_arn).status == "SUCCEEDED"
    assert starter.start(request) == first  # the same attempt, after a crash: no error
    with pytest.raises(StartRefusedError) as refused:  # another attempt (a retry, a redrive)
        starter.start(NestedStart(child, "{}", "kid", None, ROLE, parent_arn, "t2"))
    assert refused.value.code == "ExecutionAlreadyExists"
    assert len(executions(env, child)) == 1
