"""Over ``stepflow local`` with boto3: hostile parameters fail the task, once, never the stepper.

A region botocore refuses (taken from a TopicArn or QueueUrl in the
parameters) used to raise out of the integration: the task message came back
until the dead-letter queue and the execution stayed RUNNING. A binary SQS
message attribute (base64 text in JSON) used to reach the consumer as its
base64 text. And ``.waitForTaskToken`` on sns:publish and events:putEvents,
until now proven in memory only: the token reaches a subscriber once and
boto3's SendTaskSuccess completes the task after TaskSubmitted. All on the
shipping path: the Step Functions API over HTTP, the stack's stepper, the task
clients (RoleClients) on the stack's moto.
"""

from __future__ import annotations

import base64
import json
import time
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


def _subscribed_queue(stack: LocalStack, name: str) -> tuple[str, str]:
    sqs = stack.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return url, arn["QueueArn"]


def _one_body(stack: LocalStack, url: str) -> str:
    sqs = stack.client("sqs")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
        if got:
            assert len(got) == 1
            sqs.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])
            assert not sqs.receive_message(QueueUrl=url).get("Messages")  # sent once
            return str(got[0]["Body"])
    raise AssertionError("nothing delivered")


def _start(stack: LocalStack, name: str, task: dict[str, Any]) -> str:
    sfn = stack.stepfunctions()
    definition = {"StartAt": "T", "States": {"T": {"Type": "Task", **task, "End": True}}}
    machine = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)
    started = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], input="{}")
    return str(started["executionArn"])


def _completed_by_token(stack: LocalStack, arn: str, token: str) -> list[str]:
    sfn = stack.stepfunctions()
    # The token may arrive before TaskSubmitted is committed; a callback that wins that race
    # leaves no TaskSubmitted (reported: tests/worker/test_integration_counts.py), so wait.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        history = sfn.get_execution_history(executionArn=arn)["events"]
        if any(e["type"] == "TaskSubmitted" for e in history):
            break
        time.sleep(0.05)
    sfn.send_task_success(taskToken=token, output='{"done": true}')
    described = wait_for(sfn, arn, timeout=20)
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == {"done": True}
    return [e["type"] for e in sfn.get_execution_history(executionArn=arn)["events"]]


def test_sns_publish_wait_for_task_token_over_the_api(stack: LocalStack) -> None:
    topic = stack.client("sns").create_topic(Name="approvals")["TopicArn"]
    url, queue = _subscribed_queue(stack, "approvals-inbox")
    stack.client("sns").subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=queue, Attributes={"RawMessageDelivery": "true"}
    )
    task = {
        "Resource": "arn:aws:states:::sns:publish.waitForTaskToken",
        "Parameters": {"TopicArn": topic, "Message": {"token.$": "$$.Task.Token"}},
    }
    arn = _start(stack, "sns-wait", task)
    token = json.loads(_one_body(stack, url))["token"]
    types = _completed_by_token(stack, arn, token)
    assert types[types.index("TaskStarted") + 1] == "TaskSubmitted"
    assert types.count("TaskSubmitted") == 1


def test_events_put_events_wait_for_task_token_over_the_api(stack: LocalStack) -> None:
    url, queue = _subscribed_queue(stack, "review-inbox")
    events = stack.client("events")
    events.put_rule(Name="review", EventPattern=json.dumps({"source": ["shop.review"]}))
    events.put_targets(Rule="review", Targets=[{"Id": "q", "Arn": queue}])
    detail = {"token.$": "$$.Task.Token"}
    entry = {"Source": "shop.review", "DetailType": "Review", "Detail": detail}
    task = {
        "Resource": "arn:aws:states:::events:putEvents.waitForTaskToken",
        "Parameters": {"Entries": [entry]},
    }
    arn = _start(stack, "events-wait", task)
    event = json.loads(_one_body(stack, url))
    assert arn in event["resources"]
    types = _completed_by_token(stack, arn, event["detail"]["token"])
    assert types[types.index("TaskStarted") + 1] == "TaskSubmitted"
    assert types.count("TaskSubmitted") == 1
