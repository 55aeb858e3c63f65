"""Over ``stepflow local`` with boto3: the Lambda and SQS integrations on the shipping path.

No handlers are bound: every task goes through the integration registry and
the task clients (RoleClients), as deployed. Lambda is a Python endpoint
speaking Lambda's Invoke API (moto's would need Docker); SQS is the stack's
moto. Every call is counted: each task reaches its target exactly once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from stepflow.integrations.lambda_ import LAMBDA_CONFIG
from stepflow.local import LocalStack
from stepflow.local.stack import CREDENTIALS, REGION

from tests.e2e.lambda_endpoint import LambdaEndpoint, lambda_endpoint
from tests.e2e.waiting import wait_for

ROLE = "arn:aws:iam::123456789012:role/stepflow/OrdersRole"
INVOKE = "arn:aws:states:::lambda:invoke"
SEND = "arn:aws:states:::sqs:sendMessage"
FUNCTION = f"arn:aws:lambda:{REGION}:123456789012:function:"


def echo(event: Any) -> Any:
    return {"got": event}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[LambdaEndpoint]:
    with lambda_endpoint({"echo": echo}) as running:
        yield running


@pytest.fixture(scope="module")
def stack(endpoint: LambdaEndpoint) -> Iterator[LocalStack]:
    with LocalStack(port=0) as running:
        assert running.wiring is not None
        # The task clients' Lambda is the endpoint (the stack's own clients stay on moto).
        running.wiring.task_clients.clients_given["lambda"] = boto3.client(
            "lambda", endpoint_url=endpoint.url, region_name=REGION, config=LAMBDA_CONFIG,
            **CREDENTIALS,
        )  # fmt: skip
        yield running


def run(stack: LocalStack, name: str, state: dict[str, Any], value: Any = None) -> dict[str, Any]:
    sfn = stack.stepfunctions()
    definition = {"StartAt": "T", "States": {"T": {"Type": "Task", **state, "End": True}}}
    machine = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)
    execution = sfn.start_execution(
        stateMachineArn=machine["stateMachineArn"], input=json.dumps(value or {})
    )
    return wait_for(sfn, execution["executionArn"])


def history(stack: LocalStack, execution_arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = stack.stepfunctions().get_execution_history(
        executionArn=execution_arn
    )["events"]
    return events


@pytest.mark.parametrize(
    ("name", "parameters", "sent"),
    [
        ("string-payload", {"FunctionName": "echo", "Payload": '{"a": [1, 2]}'}, b'{"a": [1, 2]}'),
        ("no-payload", {"FunctionName": "echo"}, b"{}"),
        ("object-payload", {"FunctionName": f"{FUNCTION}echo", "Payload": {"b": 1}}, b'{"b":1}'),
    ],
)
def test_lambda_invoke_sends_the_payload_as_aws_does_exactly_once(
    stack: LocalStack, endpoint: LambdaEndpoint, name: str, parameters: Any, sent: bytes
) -> None:
    before = len(endpoint.bodies("echo"))
    described = run(stack, name, {"Resource": INVOKE, "Parameters": parameters})
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert endpoint.bodies("echo")[before:] == [sent]
    output = json.loads(described["output"])
    assert output["Payload"] == {"got": json.loads(sent)}
    assert (output["StatusCode"], output["ExecutedVersion"]) == (200, "$LATEST")
    assert output["SdkHttpMetadata"]["HttpStatusCode"] == 200


def test_a_payload_that_is_not_json_text_is_refused_by_lambda_once(
    stack: LocalStack, endpoint: LambdaEndpoint
) -> None:
    before = len(endpoint.bodies("echo"))
    parameters = {"FunctionName": "echo", "Payload": "not json {"}
    described = run(stack, "bad-payload", {"Resource": INVOKE, "Parameters": parameters})
    assert (described["status"], described["error"]) == (
        "FAILED",
        "Lambda.InvalidRequestContentException",
    )
    assert "Service: AWSLambda; Status Code: 400" in described["cause"]
    assert endpoint.bodies("echo")[before:] == [b"not json {"]


def test_a_function_arn_gets_the_state_input_once(
    stack: LocalStack, endpoint: LambdaEndpoint
) -> None:
    before = len(endpoint.bodies("echo"))
    described = run(stack, "function-arn", {"Resource": f"{FUNCTION}echo"}, {"order": 7})
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert json.loads(described["output"]) == {"got": {"order": 7}}
    assert [json.loads(b) for b in endpoint.bodies("echo")[before:]] == [{"order": 7}]


def receive_all(sqs: Any, url: str, expected: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every message of ``url`` (deleted), waiting for ``expected`` and a little more."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1, MaxNumberOfMessages=10)
        for message in got.get("Messages", []):
            messages.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if len(messages) >= expected and not got.get("Messages"):
            break
    return messages


def callback_machine(stack: LocalStack, name: str, url: str) -> str:
    sfn = stack.stepfunctions()
    body = {"order.$": "$.order", "token.$": "$$.Task.Token"}
    catch = {"ErrorEquals": ["States.DataLimitExceeded"], "ResultPath": "$.error", "Next": "Caught"}
    state = {
        "Type": "Task",
        "Resource": f"{SEND}.waitForTaskToken",
        "Parameters": {"QueueUrl": url, "MessageBody": body},
        "Catch": [catch],
        "End": True,
    }
    definition = {"StartAt": "T", "States": {"T": state, "Caught": {"Type": "Pass", "End": True}}}
    created = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)
    arn: str = created["stateMachineArn"]
    return arn


def test_send_message_wait_for_task_token_sends_once_and_records_the_submission(
    stack: LocalStack,
) -> None:
    sqs, sfn = stack.client("sqs"), stack.stepfunctions()
    url = sqs.create_queue(QueueName="integrations-orders")["QueueUrl"]
    machine = callback_machine(stack, "wait-orders", url)
    execution = sfn.start_execution(stateMachineArn=machine, input='{"order": 7}')["executionArn"]
    [message] = receive_all(sqs, url, 1)
    body = json.loads(message["Body"])
    assert body["order"] == 7
    sfn.send_task_success(taskToken=body["token"], output=json.dumps({"shipped": True}))
    described = wait_for(sfn, execution)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert json.loads(described["output"]) == {"shipped": True}
    events = history(stack, execution)
    task = [e["type"] for e in events if e["type"].startswith("Task") and "State" not in e["type"]]
    assert task == ["TaskScheduled", "TaskStarted", "TaskSubmitted", "TaskSucceeded"]
    [submitted] = [e for e in events if e["type"] == "TaskSubmitted"]
    response = json.loads(submitted["taskSubmittedEventDetails"]["output"])
    assert response["MessageId"] == message["MessageId"]
    assert response["MD5OfMessageBody"] == message["MD5OfBody"]
    assert response["SdkHttpMetadata"]["HttpStatusCode"] == 200
    assert receive_all(sqs, url, 0, timeout=2) == []  # no second send


def test_a_huge_callback_result_fails_the_task_with_data_limit_exceeded(
    stack: LocalStack,
) -> None:
    sqs, sfn = stack.client("sqs"), stack.stepfunctions()
    url = sqs.create_queue(QueueName="integrations-huge")["QueueUrl"]
    machine = callback_machine(stack, "wait-huge", url)
    execution = sfn.start_execution(stateMachineArn=machine, input='{"order": 8}')["executionArn"]
    [message] = receive_all(sqs, url, 1)
    token = json.loads(message["Body"])["token"]
    sfn.send_task_success(taskToken=token, output=json.dumps({"blob": "x" * 300_000}))
    described = wait_for(sfn, execution)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert json.loads(described["output"])["error"]["Error"] == "States.DataLimitExceeded"


@pytest.mark.parametrize(
    "parameters",
    [
        {"MessageBody": "m"},
        {"QueueUrl": ["q"], "MessageBody": "m"},
        {"QueueUrl": 7, "MessageBody": "m"},
    ],
    ids=["absent", "list", "number"],
)
def test_a_queue_url_that_is_not_a_string_fails_with_states_runtime(
    stack: LocalStack, parameters: dict[str, Any]
) -> None:
    name = f"bad-queue-{abs(hash(json.dumps(parameters))) % 10**8}"
    described = run(stack, name, {"Resource": SEND, "Parameters": parameters})
    assert (described["status"], described["error"]) == ("FAILED", "States.Runtime")
    assert "QueueUrl" in described["cause"]


def test_with_handlers_the_handlers_run_first_and_the_integrations_the_rest() -> None:
    calls: list[Any] = []

    def approve(event: Any) -> Any:
        calls.append(event)
        return {"approved": True}

    with LocalStack(port=0, handlers={"approve": approve}) as handled:
        sqs, sfn = handled.client("sqs"), handled.stepfunctions()
        url = sqs.create_queue(QueueName="integrations-handled")["QueueUrl"]
        states = {
            "Approve": {
                "Type": "Task",
                "Resource": INVOKE,
                "Parameters": {"FunctionName": "approve", "Payload.$": "$"},
                "ResultSelector": {"approved.$": "$.Payload.approved"},
                "Next": "Notify",
            },
            "Notify": {
                "Type": "Task",
                "Resource": SEND,
                "Parameters": {"QueueUrl": url, "MessageBody.$": "$"},
                "End": True,
            },
        }
        definition = json.dumps({"StartAt": "Approve", "States": states})
        machine = sfn.create_state_machine(name="handled", definition=definition, roleArn=ROLE)
        execution = sfn.start_execution(
            stateMachineArn=machine["stateMachineArn"], input='{"order": 3}'
        )
        described = wait_for(sfn, execution["executionArn"])
        assert described["status"] == "SUCCEEDED", described.get("cause")
        assert calls == [{"order": 3}]  # the bound handler, once
        [message] = receive_all(sqs, url, 1)  # the unbound task: moto's queue, once
        assert json.loads(message["Body"]) == {"approved": True}
        assert json.loads(described["output"])["MessageId"] == message["MessageId"]
