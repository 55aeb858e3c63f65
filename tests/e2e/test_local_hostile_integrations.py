"""Over ``stepflow local`` with boto3: hostile parameters fail the task, once, never the stepper.

A region botocore refuses (taken from a TopicArn or QueueUrl in the
parameters) used to raise out of the integration: the task message came back
until the dead-letter queue and the execution stayed RUNNING. A binary SQS
message attribute (base64 text in JSON) used to reach the consumer as its
base64 text. Both on the shipping path: the Step Functions API over HTTP, the
stack's stepper, the task clients (RoleClients) on the stack's moto.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.local import LocalStack

from tests.e2e.waiting import wait_for

ROLE = "arn:aws:iam::123456789012:role/stepflow/OrdersRole"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0) as running:
        yield running


def run(stack: LocalStack, name: str, resource: str, parameters: dict[str, Any]) -> dict[str, Any]:
    sfn = stack.stepfunctions()
    task = {"Type": "Task", "Resource": resource, "Parameters": parameters, "End": True}
    definition = {"StartAt": "T", "States": {"T": task}}
    machine = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)
    execution = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], input="{}")
    return wait_for(sfn, execution["executionArn"], timeout=20)


@pytest.mark.parametrize(
    ("name", "resource", "parameters"),
    [
        (
            "sns-bad-region",
            "arn:aws:states:::sns:publish",
            {"TopicArn": "arn:aws:sns:bad_region!:123456789012:t", "Message": "m"},
        ),
        (
            "sqs-bad-region",
            "arn:aws:states:::sqs:sendMessage",
            {"QueueUrl": "https://sqs.bad_region.amazonaws.com/123456789012/q", "MessageBody": "m"},
        ),
    ],
)
def test_a_region_botocore_refuses_fails_the_execution_once(
    stack: LocalStack, name: str, resource: str, parameters: dict[str, Any]
) -> None:
    described = run(stack, name, resource, parameters)
    assert described["status"] == "FAILED"
    assert described["error"] == "States.TaskFailed"
    assert "bad_region" in described["cause"]
    events = stack.stepfunctions().get_execution_history(executionArn=described["executionArn"])
    types = [event["type"] for event in events["events"]]
    assert types.count("TaskFailed") == 1


def test_a_binary_sqs_attribute_reaches_the_consumer_as_its_bytes(stack: LocalStack) -> None:
    sqs = stack.client("sqs")
    url = sqs.create_queue(QueueName="binary-inbox")["QueueUrl"]
    raw = b"\x00\xff stepflow"
    attributes = {"bin": {"DataType": "Binary", "BinaryValue": base64.b64encode(raw).decode()}}
    parameters = {"QueueUrl": url, "MessageBody": "m", "MessageAttributes": attributes}
    described = run(stack, "sqs-binary", "arn:aws:states:::sqs:sendMessage", parameters)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    got = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"]
    assert len(got) == 1
    assert got[0]["MessageAttributes"]["bin"]["BinaryValue"] == raw
