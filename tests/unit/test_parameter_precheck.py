"""Task parameters an integration cannot use fail the state before the task is scheduled.

On AWS such a state fails with ``States.Runtime`` and "The Parameters '<json>'
could not be used to start the Task: [<problem>]", with no TaskScheduled,
TaskStarted or TaskFailed. The engine asks the check the edge injects (the
integration registry's ``parameters_problem``), never an integration itself.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from stepflow.asl import parse
from stepflow.engine import RunTask, Start, decide, new_execution
from stepflow.integrations import default_registry
from stepflow.limits import DEFAULT_LIMITS

R = "arn:aws:states:::"
APIGW = R + "apigateway:invoke"


def machine(resource: str, parameters: dict[str, Any], **task: Any) -> Any:
    state = {"Type": "Task", "Resource": resource, "Parameters": parameters, "End": True, **task}
    return parse({"StartAt": "Call", "States": {"Call": state}})


def run(definition: Any, check: Any, payload: Any = None, **kwargs: Any) -> Any:
    state = new_execution(name="e", input=payload or {}, now=0.0)
    return decide(definition, state, Start(), 0.0, check_parameters=check, **kwargs)


def recording(seen: list[Any], problem: str | None = None) -> Any:
    """A check that records the parameters it is given and answers ``problem``."""

    def check(resource: str, parameters: Any) -> str | None:
        seen.append(parameters)
        return problem

    return check


def types(decision: Any) -> list[str]:
    return [e["type"] for e in decision.events]


HEADERS = machine(APIGW, {"ApiEndpoint": "example.com", "Method": "GET", "Headers.$": "$.h"})


def test_a_problem_fails_the_state_before_scheduling_with_aws_cause() -> None:
    seen: list[tuple[str, Any]] = []

    def check(resource: str, parameters: Any) -> str | None:
        seen.append((resource, parameters))
        return "The value of the field 'Headers' has an invalid format"

    decision = run(HEADERS, check, {"h": {"a": "b"}})
    assert types(decision) == ["ExecutionStarted", "TaskStateEntered", "ExecutionFailed"]
    assert not any(isinstance(c, RunTask) for c in decision.commands)
    assert decision.state.tasks == {} and decision.state.timers == {}
    failed = decision.events[-1]["executionFailedEventDetails"]
    parameters = {"ApiEndpoint": "example.com", "Method": "GET", "Headers": {"a": "b"}}
    assert failed == {
        "error": "States.Runtime",
        "cause": "An error occurred while executing the state 'Call' (entered at the event id "
        f"#2). The Parameters '{json.dumps(parameters, separators=(',', ':'))}' could not be "
        "used to start the Task: [The value of the field 'Headers' has an invalid format]",
    }
    assert seen == [(APIGW, parameters)]  # once, on the effective parameters


def test_no_problem_schedules_the_task_on_the_very_parameters_checked() -> None:
    seen: list[Any] = []
    decision = run(HEADERS, recording(seen), {"h": {"a": ["b"]}})
    assert types(decision)[-1] == "TaskScheduled"
    [command] = [c for c in decision.commands if isinstance(c, RunTask)]
    assert seen == [command.input] and seen[0] is command.input  # checked, never copied


def test_without_a_check_the_task_is_scheduled() -> None:
    assert types(run(HEADERS, None, {"h": "x"}))[-1] == "TaskScheduled"


@pytest.mark.parametrize(
    "check",
    [
        lambda r, p: 1 / 0,
        lambda r, p: p["missing"],
        lambda r, p: 42,  # not a problem text
        lambda r, p: "",
    ],
    ids=["raises", "key-error", "not-a-string", "empty"],
)
def test_a_broken_check_is_no_problem_and_the_integration_judges(check: Any) -> None:
    """A check's defect must neither crash the decision nor fail a workflow AWS runs."""
    decision = run(HEADERS, check, {"h": "x"})
    assert types(decision)[-1] == "TaskScheduled"
    assert decision.state.status == "RUNNING"


def test_a_catch_cannot_catch_it_and_a_retry_does_not_retry_it() -> None:
    definition = machine(
        APIGW,
        {"ApiEndpoint": "example.com", "Method": "GET"},
        Retry=[{"ErrorEquals": ["States.ALL"], "MaxAttempts": 3}],
        Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Call"}],
    )
    calls: list[Any] = []
    decision = run(definition, recording(calls, "bad"))
    assert types(decision) == ["ExecutionStarted", "TaskStateEntered", "ExecutionFailed"]
    assert len(calls) == 1


def test_the_token_is_in_the_checked_parameters_and_activities_are_not_checked() -> None:
    seen: list[Any] = []
    callback = machine(
        R + "sqs:sendMessage.waitForTaskToken",
        {"QueueUrl": "q", "MessageBody": {"token.$": "$$.Task.Token"}},
    )
    run(callback, recording(seen))
    assert seen[0]["MessageBody"]["token"]
    activity = machine("arn:aws:states:us-east-1:123456789012:activity:work", {"a": 1})
    assert types(run(activity, recording(seen, "bad")))[-1] == "ActivityScheduled"
    assert len(seen) == 1


def test_huge_parameters_give_a_cause_cut_at_the_cause_limit() -> None:
    big = {"h": {f"k{i}": "v" * 100 for i in range(3000)}}  # ~330 KB
    decision = run(HEADERS, lambda r, p: "bad", big, limits=DEFAULT_LIMITS)
    cause = decision.events[-1]["executionFailedEventDetails"]["cause"]
    assert len(cause) == DEFAULT_LIMITS.max_cause_length
    assert cause.startswith("An error occurred while executing the state 'Call'")


# --- the registry's check: what each integration refuses before scheduling -------------

PROBLEMS = [
    (APIGW, {"ApiEndpoint": "h", "Method": "GET", "Headers": {"a": "b"}}, "Headers"),
    (APIGW, {"ApiEndpoint": "h", "Method": "GET", "Headers": "a"}, "Headers"),
    (APIGW, {"ApiEndpoint": "h", "Method": "GET", "QueryParameters": {"q": 1}}, "QueryParameters"),
    (APIGW, {"ApiEndpoint": "h", "Method": "GET", "Headers": {"Host": ["x"]}}, "Headers"),
    (APIGW, {"ApiEndpoint": "h", "Method": "FETCH"}, "Method"),
    (APIGW, ["not", "an", "object"], "Parameters"),
    (R + "apigateway:invoke.waitForTaskToken", {"ApiEndpoint": 5, "Method": "GET"}, "ApiEndpoint"),
    (R + "dynamodb:putItem", {"TableName": "t", "Item": {"n": {"N": 5}}}, "'N' must be a STRING"),
    (R + "dynamodb:putItem", {"TableName": "t", "Item": {"n": {"Q": "5"}}}, "'Q' is not supported"),
    (R + "dynamodb:getItem", {"TableName": "t", "Key": {}, "Limit": 1}, "'Limit' is not supported"),
    (R + "dynamodb:updateItem", {"TableName": 7, "Key": {}}, "'TableName' must be a STRING"),
    (R + "dynamodb:deleteItem", {"TableName": "t", "Key": {"b": {"B": "%%"}}}, "base64"),
    (R + "dynamodb:putItem", "text", "must be a JSON object"),
    (R + "sqs:sendMessage", {"MessageBody": "m"}, "'QueueUrl' is required"),
    (R + "sqs:sendMessage", {"QueueUrl": 1, "MessageBody": "m"}, "'QueueUrl' must be a STRING"),
    (R + "sqs:sendMessage.waitForTaskToken", {"QueueUrl": "q"}, "'MessageBody' is required"),
    (R + "sns:publish", {"TopicArn": "t", "Message": "m", "Subject": 5}, "'Subject' must be"),
    (R + "sns:publish", {"TopicArn": "t", "Message": "m", "Nope": 1}, "'Nope' is not supported"),
    (
        R + "sns:publish",
        {"TopicArn": "t", "Message": "m", "MessageAttributes": {"a": {"BinaryValue": "%"}}},
        "base64",
    ),
    (R + "events:putEvents", {"Entries": [1]}, "'Entries' must be an ARRAY"),
    (R + "events:putEvents", {"Entries": [{"Source": 3}]}, "'Source' must be a STRING"),
    (R + "events:putEvents", {"Entries": [{"Colour": "red"}]}, "'Colour' is not supported"),
]


@pytest.mark.parametrize(("resource", "parameters", "expected"), PROBLEMS)
def test_the_registry_names_what_aws_refuses_before_scheduling(
    resource: str, parameters: Any, expected: str
) -> None:
    problem = default_registry().parameters_problem(resource, parameters)
    assert problem is not None and expected in problem, problem


FINE = [
    (APIGW, {"ApiEndpoint": "h", "Method": "GET", "Headers": {"a": ["b"]}}),
    (R + "dynamodb:putItem", {"TableName": "t", "Item": {"n": {"N": "5"}, "b": {"B": "AA=="}}}),
    # AWS refuses these when the task runs (DynamoDB's ValidationException): not here.
    (R + "dynamodb:putItem", {"TableName": "t", "Key": None, "Item": None}),
    (R + "dynamodb:putItem", {"TableName": "/bad", "Item": {}}),
    (R + "dynamodb:getItem", {"TableName": "ab", "Key": {}}),
    (R + "sqs:sendMessage", {"QueueUrl": "q", "MessageBody": {"any": ["json"]}}),
    (R + "sns:publish", {"TopicArn": "t", "Message": {"any": "json"}}),
    (R + "sns:publish", {"Subject": "no message, no topic: SNS says so"}),
    (R + "events:putEvents", {"Entries": [{"Detail": {"a": 1}, "DetailType": "d"}]}),
    # Not checked before scheduling: other integrations, unknown or unsupported resources.
    (R + "lambda:invoke", {"FunctionName": 5}),
    ("arn:aws:lambda:us-east-1:123456789012:function:f", "anything"),
    (R + "aws-sdk:s3:getObject", {"Bucket": 5}),
    (R + "dynamodb:query", {"TableName": 5}),
    (R + "nosuchservice:doIt", 5),
    ("arn:aws:states:us-east-1:123456789012:activity:work", 5),
]


@pytest.mark.parametrize(("resource", "parameters"), FINE)
def test_what_is_left_to_the_call_or_not_checked(resource: str, parameters: Any) -> None:
    assert default_registry().parameters_problem(resource, parameters) is None


def test_checks_only_read_the_parameters() -> None:
    registry = default_registry()
    for resource, parameters, _ in PROBLEMS:
        before = json.dumps(parameters, sort_keys=True)
        registry.parameters_problem(resource, parameters)
        assert json.dumps(parameters, sort_keys=True) == before, resource


def test_a_huge_item_is_checked_and_its_problem_found() -> None:
    item: dict[str, Any] = {f"a{i}": {"S": "x" * 50} for i in range(20_000)}  # ~1.3 MB
    item["a19999"] = {"N": 5}
    problem = default_registry().parameters_problem(
        R + "dynamodb:putItem", {"TableName": "t", "Item": item}
    )
    assert problem == "The value for the field 'N' must be a STRING"


def test_deeply_nested_parameters_are_checked_all_the_way_down() -> None:
    value: Any = {"N": 5}
    for _ in range(900):  # as deep as the state's input can be recorded
        value = {"L": [{"S": "x"}, value]}
    definition = machine(R + "dynamodb:putItem", {"TableName": "t", "Item.$": "$.item"})
    decision = run(definition, default_registry().parameters_problem, {"item": {"deep": value}})
    assert types(decision) == ["ExecutionStarted", "TaskStateEntered", "ExecutionFailed"]
    cause = decision.events[-1]["executionFailedEventDetails"]["cause"]
    assert cause.endswith("[The value for the field 'N' must be a STRING]")


def test_a_check_that_overflows_the_stack_is_no_problem() -> None:
    def bottomless(resource: str, parameters: Any) -> str | None:
        return bottomless(resource, parameters)

    assert types(run(HEADERS, bottomless, {"h": "x"}))[-1] == "TaskScheduled"
