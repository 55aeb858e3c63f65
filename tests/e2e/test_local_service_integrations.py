"""The optimized integrations on the path that ships: boto3 against ``stepflow local``.

A workflow puts an item in DynamoDB, reads it back, publishes it to SNS and
sends it to EventBridge; the stack's moto holds the table, the topic (with an
SQS subscription) and the rule (with an SQS target), and each execution must
write exactly one item, deliver exactly one message and one event.

Until the local stack's own invoker is the integration registry's, the stack
is built with ``IntegrationInvoker(default_registry(), ...)`` over clients at
the stack's moto endpoint (``LocalStack._invoker``), which is what the stack
will run by default.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from stepflow.local import LocalStack

from tests.e2e.waiting import wait_for

pytest.importorskip("moto")
ROLE = "arn:aws:iam::123456789012:role/OrdersRole"
TABLE = "orders-e2e"
R = "arn:aws:states:::"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0) as running:
        yield running


def _queue(stack: LocalStack, name: str) -> tuple[str, str]:
    sqs = stack.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return url, arn["QueueArn"]


def _drain(stack: LocalStack, url: str) -> list[str]:
    sqs, bodies = stack.client("sqs"), []
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for message in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            bodies.append(message["Body"])
    return bodies


WORKFLOW = {
    "StartAt": "Put",
    "States": {
        "Put": {
            "Type": "Task",
            "Resource": R + "dynamodb:putItem",
            "Parameters": {
                "TableName": TABLE,
                "Item": {"id": {"S.$": "$.id"}, "total": {"N.$": "$.total"}},
            },
            "ResultPath": None,
            "Next": "Get",
        },
        "Get": {
            "Type": "Task",
            "Resource": R + "dynamodb:getItem",
            "Parameters": {"TableName": TABLE, "Key": {"id": {"S.$": "$.id"}}},
            "ResultSelector": {"item.$": "$.Item"},
            "ResultPath": "$.read",
            "Next": "Publish",
        },
        "Publish": {
            "Type": "Task",
            "Resource": R + "sns:publish",
            "Parameters": {"TopicArn.$": "$.topic", "Message.$": "$.read.item"},
            "ResultSelector": {"MessageId.$": "$.MessageId"},
            "ResultPath": "$.published",
            "Next": "Announce",
        },
        "Announce": {
            "Type": "Task",
            "Resource": R + "events:putEvents",
            "Parameters": {
                "Entries": [
                    {"Source": "shop.orders", "DetailType": "Stored", "Detail.$": "$.read.item"}
                ]
            },
            "ResultPath": "$.announced",
            "End": True,
        },
    },
}


def test_put_get_publish_announce_writes_and_delivers_once_per_execution(
    stack: LocalStack,
) -> None:
    stack.client("dynamodb").create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    topic = stack.client("sns").create_topic(Name="orders-e2e")["TopicArn"]
    sns_url, sns_queue = _queue(stack, "orders-e2e-sns")
    stack.client("sns").subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=sns_queue,
        Attributes={"RawMessageDelivery": "true"},
    )
    events_url, events_queue = _queue(stack, "orders-e2e-events")
    events = stack.client("events")
    events.put_rule(Name="stored", EventPattern=json.dumps({"source": ["shop.orders"]}))
    events.put_targets(Rule="stored", Targets=[{"Id": "q", "Arn": events_queue}])

    sfn = stack.stepfunctions()
    machine = sfn.create_state_machine(
        name="orders-e2e", definition=json.dumps(WORKFLOW), roleArn=ROLE
    )["stateMachineArn"]
    ids = ["o-1", "o-2", "o-3"]
    arns = [
        sfn.start_execution(
            stateMachineArn=machine,
            input=json.dumps({"id": i, "total": str(n), "topic": topic}),
        )["executionArn"]
        for n, i in enumerate(ids, 1)
    ]
    for arn in arns:
        described = wait_for(sfn, arn, timeout=60)
        assert described["status"] == "SUCCEEDED", described
        output = json.loads(described["output"])
        assert output["announced"]["FailedEntryCount"] == 0
        assert output["published"]["MessageId"]

    items = stack.client("dynamodb").scan(TableName=TABLE)["Items"]
    assert sorted(item["id"]["S"] for item in items) == ids  # one write each
    messages = [json.loads(b) for b in _drain(stack, sns_url)]
    assert sorted(m["id"]["S"] for m in messages) == ids  # one delivery each
    delivered = [json.loads(b) for b in _drain(stack, events_url)]
    assert sorted(e["detail"]["id"]["S"] for e in delivered) == ids  # one event each
    for event in delivered:  # Step Functions appends the execution's and machine's ARNs
        assert sum(arn in event["resources"] for arn in arns) == 1
        assert machine in event["resources"]

    history = sfn.get_execution_history(executionArn=arns[0])["events"]
    scheduled = [e["taskScheduledEventDetails"] for e in history if e["type"] == "TaskScheduled"]
    assert [(d["resourceType"], d["resource"]) for d in scheduled] == [
        ("dynamodb", "putItem"),
        ("dynamodb", "getItem"),
        ("sns", "publish"),
        ("events", "putEvents"),
    ]


def test_a_missing_table_fails_the_execution_with_dynamodbs_error(
    stack: LocalStack,
) -> None:
    sfn = stack.stepfunctions()
    definition = {
        "StartAt": "Put",
        "States": {
            "Put": {
                "Type": "Task",
                "Resource": R + "dynamodb:putItem",
                "Parameters": {"TableName": "no-such-table", "Item": {"id": {"S": "1"}}},
                "End": True,
            }
        },
    }
    machine = sfn.create_state_machine(
        name="orders-e2e-missing", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine)["executionArn"]
    described = wait_for(sfn, arn, timeout=60)
    assert described["status"] == "FAILED"
    assert described["error"] == "DynamoDB.ResourceNotFoundException"
    assert "(Service: AmazonDynamoDBv2; Status Code: 400;" in described["cause"]
