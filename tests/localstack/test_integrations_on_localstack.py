"""The service integrations against LocalStack (SNS, SQS, EventBridge, S3) and DynamoDB Local.

Run only when ``LOCALSTACK_ENDPOINT`` is set (``make localstack`` sets it, and
``LOCALSTACK_DYNAMODB_ENDPOINT`` for DynamoDB Local, where the ``dynamodb``
integration's client is routed). Each workflow runs through the local stack's
Step Functions API with boto3; each test counts the items written, messages
delivered and events received. The stack runs its tasks on the integration
registry (``IntegrationInvoker(default_registry(), ...)``) over clients at
those endpoints. An integration this build lacks is skipped, naming it.

A module of its own: one local stack per process at a time (see
``test_order_demo_on_localstack.py``).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.integrations import default_registry
from stepflow.local import LocalStack

ENDPOINT = os.environ.get("LOCALSTACK_ENDPOINT")
DYNAMODB_ENDPOINT = os.environ.get("LOCALSTACK_DYNAMODB_ENDPOINT") or None
pytestmark = pytest.mark.skipif(
    not ENDPOINT, reason="set LOCALSTACK_ENDPOINT (e.g. http://localhost:4566) to run these"
)
ROLE = "arn:aws:iam::000000000000:role/integrations"
R = "arn:aws:states:::"
SERVICES = ("dynamodb", "sns", "sqs", "events", "s3")


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0, endpoint=ENDPOINT, dynamodb_endpoint=DYNAMODB_ENDPOINT) as s:
        yield s


def _needs(resource: str) -> None:
    if default_registry().problem(resource) is not None:
        pytest.skip(f"this build has no integration for {resource}")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _run(stack: LocalStack, states: dict[str, Any], data: Any = None) -> dict[str, Any]:
    """Create a state machine of one or more Task states, run it, return DescribeExecution."""
    sfn = stack.stepfunctions()
    first = next(iter(states))
    names = list(states)
    for here, after in zip(names, [*names[1:], None], strict=True):
        states[here] = {"Type": "Task", **states[here]}
        states[here].update({"Next": after} if after else {"End": True})
    machine = sfn.create_state_machine(
        name=_name("integrations"),
        definition=json.dumps({"StartAt": first, "States": states}),
        roleArn=ROLE,
    )["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps(data or {}))["executionArn"]
    deadline = time.monotonic() + 90
    while True:
        described: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            return described
        time.sleep(0.2)


def _queue(stack: LocalStack) -> tuple[str, str]:
    sqs = stack.client("sqs")
    url = sqs.create_queue(QueueName=_name("inbox"))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return url, arn["QueueArn"]


def _drain(stack: LocalStack, url: str, expect: int, wait: float = 10.0) -> list[str]:
    """The bodies in the queue: at least ``expect`` (or all there are after ``wait`` s), and
    a further second of receiving to catch a duplicate."""
    sqs, bodies = stack.client("sqs"), []
    deadline = time.monotonic() + wait
    quiet_until: float | None = None
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in got.get("Messages", []):
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            bodies.append(message["Body"])
        now = time.monotonic()
        if len(bodies) >= expect and quiet_until is None:
            quiet_until = now + 1.0
        if (quiet_until is not None and now >= quiet_until) or now > deadline:
            return bodies


def test_dynamodb_put_then_get_writes_one_item_in_dynamodb_local(stack: LocalStack) -> None:
    table = _name("orders")
    dynamodb = stack.client("dynamodb")
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    described = _run(
        stack,
        {
            "Put": {
                "Resource": R + "dynamodb:putItem",
                "Parameters": {"TableName": table, "Item": {"id": {"S.$": "$.id"}}},
                "ResultPath": None,
            },
            "Get": {
                "Resource": R + "dynamodb:getItem",
                "Parameters": {"TableName": table, "Key": {"id": {"S.$": "$.id"}}},
                "ResultSelector": {"item.$": "$.Item"},
            },
        },
        {"id": "o-1"},
    )
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == {"item": {"id": {"S": "o-1"}}}
    assert dynamodb.scan(TableName=table)["Items"] == [{"id": {"S": "o-1"}}]


def test_dynamodb_errors_are_named_as_on_aws(stack: LocalStack) -> None:
    missing = _run(
        stack,
        {
            "Put": {
                "Resource": R + "dynamodb:putItem",
                "Parameters": {"TableName": _name("gone"), "Item": {"id": {"S": "1"}}},
            }
        },
    )
    assert (missing["status"], missing["error"]) == ("FAILED", "DynamoDB.ResourceNotFoundException")
    assert (
        "(Service: AmazonDynamoDBv2; Status Code: 400; Error Code: ResourceNotFoundException;"
        in (missing["cause"])
    )
    invalid = _run(
        stack,
        {
            "Put": {
                "Resource": R + "dynamodb:putItem",
                "Parameters": {"TableName": "/bad", "Item": {"id": {"S": "1"}}},
            }
        },
    )
    assert invalid["error"] == "DynamoDB.AmazonDynamoDBException"


def test_sns_publish_delivers_one_message_to_the_subscribed_queue(stack: LocalStack) -> None:
    sns = stack.client("sns")
    topic = sns.create_topic(Name=_name("topic"))["TopicArn"]
    url, queue_arn = _queue(stack)
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    described = _run(
        stack,
        {
            "Publish": {
                "Resource": R + "sns:publish",
                "Parameters": {"TopicArn": topic, "Message.$": "$"},
            }
        },
        {"order": "o-1"},
    )
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"])["MessageId"]
    assert [json.loads(b) for b in _drain(stack, url, 1)] == [{"order": "o-1"}]


def test_sns_publish_to_a_missing_topic_is_sns_not_found(stack: LocalStack) -> None:
    described = _run(
        stack,
        {
            "Publish": {
                "Resource": R + "sns:publish",
                "Parameters": {
                    "TopicArn": "arn:aws:sns:us-east-1:000000000000:" + _name("gone"),
                    "Message": "x",
                },
            }
        },
    )
    assert (described["status"], described["error"]) == ("FAILED", "SNS.NotFoundException")
    assert described["cause"].startswith(
        "Topic does not exist (Service: AmazonSNS; Status Code: 404; Error Code: NotFound; "
    )


def test_events_put_events_delivers_one_event_to_the_rules_target(stack: LocalStack) -> None:
    events = stack.client("events")
    source = _name("shop")
    url, queue_arn = _queue(stack)
    rule = _name("rule")
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": [source]}))
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": queue_arn}])
    entry = {"Source": source, "DetailType": "Stored", "Detail.$": "$"}
    described = _run(
        stack,
        {"Announce": {"Resource": R + "events:putEvents", "Parameters": {"Entries": [entry]}}},
        {"order": "o-1"},
    )
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"])["FailedEntryCount"] == 0
    delivered = [json.loads(b) for b in _drain(stack, url, 1)]
    assert [e["detail"] for e in delivered] == [{"order": "o-1"}]
    assert described["executionArn"] in delivered[0]["resources"]


def test_events_an_entry_without_source_fails_with_failed_entry(stack: LocalStack) -> None:
    entries = [{"DetailType": "d", "Detail": {"m": 1}}]
    described = _run(
        stack,
        {"Announce": {"Resource": R + "events:putEvents", "Parameters": {"Entries": entries}}},
    )
    assert (described["status"], described["error"]) == ("FAILED", "EventBridge.FailedEntry")
    assert json.loads(described["cause"])["FailedEntryCount"] == 1


def test_sqs_send_message_puts_one_message_in_the_queue(stack: LocalStack) -> None:
    _needs(R + "sqs:sendMessage")
    url, _ = _queue(stack)
    described = _run(
        stack,
        {
            "Send": {
                "Resource": R + "sqs:sendMessage",
                "Parameters": {"QueueUrl": url, "MessageBody.$": "$"},
            }
        },
        {"order": "o-1"},
    )
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"])["MessageId"]
    assert [json.loads(b) for b in _drain(stack, url, 1)] == [{"order": "o-1"}]


def test_s3_put_then_get_object_through_the_sdk_integration(stack: LocalStack) -> None:
    _needs(R + "aws-sdk:s3:putObject")
    bucket = _name("integrations")
    s3 = stack.client("s3")
    s3.create_bucket(Bucket=bucket)
    described = _run(
        stack,
        {
            "Put": {
                "Resource": R + "aws-sdk:s3:putObject",
                "Parameters": {"Bucket": bucket, "Key": "order.json", "Body.$": "$.body"},
                "ResultPath": None,
            },
            "Get": {
                "Resource": R + "aws-sdk:s3:getObject",
                "Parameters": {"Bucket": bucket, "Key": "order.json"},
                "ResultSelector": {"body.$": "$.Body"},
            },
        },
        {"body": "hello"},
    )
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == {"body": "hello"}
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert [o["Key"] for o in listed] == ["order.json"]
    missing = _run(
        stack,
        {
            "Get": {
                "Resource": R + "aws-sdk:s3:getObject",
                "Parameters": {"Bucket": bucket, "Key": "absent"},
            }
        },
    )
    assert (missing["status"], missing["error"]) == ("FAILED", "S3.NoSuchKeyException")
