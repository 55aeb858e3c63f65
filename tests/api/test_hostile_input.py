"""Hostile requests on the API Lambda's event path: each one a 4xx in AWS's shape, never a 5xx.

The cases of issue 12: a lone surrogate in an input or a name, a 10,000-deep
body or input, an oversized definition, input or request, an ``error`` or
``cause`` over AWS's lengths, and botocore's declared constraints (maximum
lengths, ranges, patterns, enumerations) that botocore does not check itself.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from stepflow.api import StepFunctionsService, lambda_handler
from stepflow.limits import Limits
from stepflow.runtime import InMemoryBus, InMemoryLog
from stepflow.runtime.registry import InMemoryRegistry
from stepflow.runtime.task_queue import InMemoryTaskQueue

from tests.api.conftest import PASS, ROLE, SCOPE, Api, invoke

CONTEXT = SimpleNamespace(
    function_name="api", memory_limit_in_mb=256, invoked_function_arn="arn", aws_request_id="r"
)
WAIT = json.dumps({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": True}}})


@pytest.fixture
def api() -> Api:
    """The API service with activities (an in-memory task queue)."""
    log, registry, bus = InMemoryLog(), InMemoryRegistry(), InMemoryBus(1_700_000_000.0)
    service = StepFunctionsService(
        log=log,
        bus=bus,
        registry=registry,
        invoker=invoke,
        scope=SCOPE,
        clock=lambda: bus.now,
        task_queue=InMemoryTaskQueue(),
    )
    return Api(service, log, bus, registry)


@pytest.fixture
def configured(api: Api) -> Any:
    lambda_handler.configure(api.service)
    yield api
    lambda_handler.configure(None)


def send(operation: str, body: str | dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """One proxy event through the real handler; the answer's status and JSON body."""
    text = body if isinstance(body, str) else json.dumps(body)
    event = {
        "httpMethod": "POST",
        "path": "/",
        "headers": {"X-Amz-Target": f"AWSStepFunctions.{operation}"},
        "body": text,
        "isBase64Encoded": False,
    }
    response = lambda_handler.handler(event, CONTEXT)
    document = json.loads(response["body"])
    return response["statusCode"], document


def error(operation: str, body: str | dict[str, Any]) -> str:
    status, document = send(operation, body)
    assert 400 <= status < 500, (status, document)
    assert set(document) == {"__type", "message"}, document
    return str(document["__type"])


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def machine(api: Api, definition: str = PASS) -> str:
    return api.machine("M", definition)


def test_a_lone_surrogate_in_an_input_or_a_name_is_a_4xx(configured: Api) -> None:
    arn = machine(configured)
    # the input text holds the escape: the input is not JSON StepFlow can store
    assert error("StartExecution", {"stateMachineArn": arn, "input": '"\\ud800"'}) == (
        "InvalidExecutionInput"
    )
    # the body holds it: the body is refused before any operation runs
    body = '{"stateMachineArn": "' + arn + '", "input": "{}", "name": "a\\ud800"}'
    assert error("StartExecution", body) == "SerializationException"
    assert error("CreateActivity", '{"name": "\\ud800"}') == "SerializationException"
    # a raw surrogate in the event (the runtime decoded an escaped one)
    assert error("CreateActivity", '{"name": "\ud800"}') == "SerializationException"
    assert configured("ListExecutions", stateMachineArn=arn)["executions"] == []


def test_a_10000_deep_body_or_input_is_a_4xx(configured: Api) -> None:
    arn = machine(configured)
    assert error("StartExecution", nested(10_000)) == "SerializationException"
    deep_member = '{"stateMachineArn": "' + arn + '", "input": ' + nested(10_000) + "}"
    assert error("StartExecution", deep_member) == "SerializationException"
    for depth in (513, 1025, 10_000):
        body = {"stateMachineArn": arn, "input": nested(depth)}
        assert error("StartExecution", body) == "InvalidExecutionInput", depth
    # invalid JSON nested deeper than the bound is refused without a RecursionError
    body = {"stateMachineArn": arn, "input": "[" * 10_000 + "1e400"}
    assert error("StartExecution", body) == "InvalidExecutionInput"
    test_state = {"definition": PASS, "roleArn": ROLE, "input": nested(5000)}
    assert error("TestState", test_state) == "InvalidExecutionInput"
    deep_definition = {"name": "D", "roleArn": ROLE, "definition": nested(10_000)}
    assert error("CreateStateMachine", deep_definition) == "InvalidDefinition"
    # 512 levels pass
    started = configured("StartExecution", stateMachineArn=arn, input=nested(512))
    configured.drain()
    assert configured("DescribeExecution", executionArn=started["executionArn"])["status"] == (
        "SUCCEEDED"
    )


def test_a_deep_json_made_inside_the_first_decision_is_not_a_5xx(configured: Api) -> None:
    # review: StartExecution decides inline; States.StringToJson over 100,000 brackets
    # raised RecursionError out of the handler (500 InternalFailure)
    parse = {"Type": "Pass", "Parameters": {"v.$": "States.StringToJson($.s)"}, "End": True}
    arn = machine(configured, json.dumps({"StartAt": "P", "States": {"P": parse}}))
    body = {"stateMachineArn": arn, "input": json.dumps({"s": nested(100_000)})}
    status, started = send("StartExecution", body)
    assert status == 200, started
    configured.drain()
    described = configured("DescribeExecution", executionArn=started["executionArn"])
    assert (described["status"], described["error"]) == ("FAILED", "States.Runtime")
    test_state = {"definition": json.dumps(parse), "roleArn": ROLE, "input": body["input"]}
    status, tested = send("TestState", test_state)
    assert status == 200 and tested["status"] == "FAILED", tested


def test_payload_and_definition_sizes_follow_the_limits_as_utf8_bytes(configured: Api) -> None:
    arn = machine(configured)
    limit = Limits().max_payload_bytes
    fits = json.dumps("x" * (limit - 2))
    assert len(fits.encode()) == limit
    configured("StartExecution", stateMachineArn=arn, input=fits)
    # 3 bytes per character in UTF-8: the same number of characters is over
    over = json.dumps("\u20ac" * (limit // 3), ensure_ascii=False)
    assert len(over) < limit < len(over.encode())
    assert error("StartExecution", {"stateMachineArn": arn, "input": over}) == (
        "InvalidExecutionInput"
    )
    nine_mib = json.dumps("x" * (9 * 1024 * 1024))
    status, document = send("StartExecution", {"stateMachineArn": arn, "input": nine_mib})
    assert status == 413 and document["__type"] == "RequestEntityTooLargeException"
    big = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Comment": "c" * (1024 * 1024)}}}
    create = {"name": "Big", "roleArn": ROLE, "definition": json.dumps(big)}
    assert error("CreateStateMachine", create) == "InvalidDefinition"
    assert error("ValidateStateMachineDefinition", {"definition": json.dumps(big)}) == (
        "ValidationException"
    )


def test_error_cause_and_declared_maximums_are_validation_exceptions(configured: Api) -> None:
    arn = machine(configured, WAIT)
    started = configured("StartExecution", stateMachineArn=arn)
    execution = started["executionArn"]
    status, document = send("StopExecution", {"executionArn": execution, "error": "e" * 257})
    assert status == 400 and document == {
        "__type": "ValidationException",
        "message": "1 validation error detected: Value at 'error' failed to satisfy constraint: "
        "Member must have length less than or equal to 256",
    }
    stop = {"executionArn": execution, "cause": "c" * 32_769}
    assert error("StopExecution", stop) == "ValidationException"
    assert configured("DescribeExecution", executionArn=execution)["status"] == "RUNNING"
    assert error("ListExecutions", {"stateMachineArn": arn, "maxResults": 1001}) == (
        "ValidationException"
    )
    assert error("ListExecutions", {"stateMachineArn": arn, "statusFilter": "NOPE"}) == (
        "ValidationException"
    )
    assert error("StartExecution", {"stateMachineArn": arn, "traceHeader": "\u00e9"}) == (
        "ValidationException"
    )
    # as AWS answers it: the value of a member not marked sensitive is shown
    status, document = send("StartExecution", {"stateMachineArn": arn, "name": "n" * 81})
    assert document == {
        "__type": "ValidationException",
        "message": f"1 validation error detected: Value '{'n' * 81}' at 'name' failed to "
        "satisfy constraint: Member must have length less than or equal to 80",
    }
    assert error("StartExecution", {"stateMachineArn": arn, "name": "a b"}) == "InvalidName"
    tags = [{"key": f"k{i}", "value": "v"} for i in range(51)]
    create = {"name": "T", "roleArn": ROLE, "definition": PASS, "tags": tags}
    assert error("CreateStateMachine", create) == "TooManyTags"
    create["tags"] = [{"key": "k" * 129, "value": "v"}]
    assert error("CreateStateMachine", create) == "ValidationException"
    configured("StopExecution", executionArn=execution, error="e" * 256, cause="c" * 32_768)
    assert configured("DescribeExecution", executionArn=execution)["status"] == "ABORTED"


def test_send_task_failure_and_success_are_bounded(configured: Api) -> None:
    token = "t" * 10
    assert error("SendTaskFailure", {"taskToken": token, "error": "e" * 257}) == (
        "ValidationException"
    )
    assert error("SendTaskSuccess", {"taskToken": token, "output": nested(600)}) == (
        "InvalidOutput"
    )
    over = json.dumps("x" * Limits().max_payload_bytes)  # the task fails, not the request
    assert error("SendTaskSuccess", {"taskToken": token, "output": over}) == "InvalidToken"
    assert error("SendTaskSuccess", {"taskToken": token, "output": '"\\udc00"'}) == (
        "InvalidOutput"
    )


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}', "[1e400]"])
def test_nan_infinity_and_huge_numbers_are_invalid_input_not_null(
    configured: Api, text: str
) -> None:
    # review: these were accepted, and the execution ran on null in their place
    arn = machine(configured)
    assert error("StartExecution", {"stateMachineArn": arn, "input": text}) == (
        "InvalidExecutionInput"
    )
    assert configured("ListExecutions", stateMachineArn=arn)["executions"] == []
    test_state = {"definition": PASS, "roleArn": ROLE, "input": text}
    assert error("TestState", test_state) == "InvalidExecutionInput"
    assert error("SendTaskSuccess", {"taskToken": "t" * 10, "output": text}) == "InvalidOutput"


def test_configured_limits_replace_the_defaults(api: Api) -> None:
    arn = machine(api)
    api.service.limits = Limits(max_payload_bytes=10, max_error_length=3, max_json_depth=2)
    with pytest.raises(Exception, match="InvalidExecutionInput"):
        api("StartExecution", stateMachineArn=arn, input='"' + "x" * 9 + '"')
    with pytest.raises(Exception, match="InvalidExecutionInput"):
        api("StartExecution", stateMachineArn=arn, input="[[[]]]")
    api("StartExecution", stateMachineArn=arn, input="[[]]")
    with pytest.raises(Exception, match="less than or equal to 3"):
        execution = arn.replace("stateMachine", "execution") + ":x"
        api("StopExecution", executionArn=execution, error="abcd")
    with pytest.raises(Exception, match="InvalidDefinition"):
        api("UpdateStateMachine", stateMachineArn=arn, definition=PASS)


@pytest.mark.parametrize(
    "role",
    [
        "not-an-arn",
        "arn:aws:iam::000000000000:user/bob",
        "arn:aws:iam::000000000000:role/a b",
        "arn:aws:iam::000000000000:role/x\n",
        "arn:aws:iam::*:role/*",
    ],
)
def test_a_role_arn_that_is_not_a_role_is_invalid_arn(configured: Api, role: str) -> None:
    # review: CreateStateMachine and UpdateStateMachine stored any roleArn; every task
    # of the machine then failed at run time (AWS answers InvalidArn at once)
    create = {"name": "R", "definition": PASS, "roleArn": role}
    assert error("CreateStateMachine", create) == "InvalidArn"
    assert configured("ListStateMachines")["stateMachines"] == []
    arn = machine(configured)
    assert error("UpdateStateMachine", {"stateMachineArn": arn, "roleArn": role}) == "InvalidArn"
    described = configured("DescribeStateMachine", stateMachineArn=arn)
    assert described["roleArn"] == ROLE


def test_start_sync_execution_keeps_a_lower_configured_event_cap() -> None:
    # review: the synchronous run set its own cap of 100,000 events over the configured one
    log, registry, bus = InMemoryLog(), InMemoryRegistry(), InMemoryBus(1_700_000_000.0)
    service = StepFunctionsService(
        log=log,
        bus=bus,
        registry=registry,
        invoker=invoke,
        scope=SCOPE,
        clock=lambda: bus.now,
        limits=Limits(max_events_per_execution=50),
    )
    api = Api(service, log, bus, registry)
    loop = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Next": "C"},
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.stop", "IsPresent": True, "Next": "E"}],
                "Default": "A",
            },
            "E": {"Type": "Succeed"},
        },
    }
    arn = api.machine("L", json.dumps(loop), type="EXPRESS")
    result = api("StartSyncExecution", stateMachineArn=arn, input="{}")
    assert (result["status"], result["error"]) == ("FAILED", "States.Runtime")
    assert "reached 50 events" in result["cause"], result["cause"]
