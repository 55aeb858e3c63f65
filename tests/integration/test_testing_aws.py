"""``stepflow.testing`` with ``aws=True``: unbound integrations run against moto in process.

Inside moto's ``mock_aws()`` the in-memory driver sends the same requests a
deployment sends (through :class:`~stepflow.integrations.IntegrationInvoker`),
to real moto queues; handlers still win where they are bound. Without a
handler and without ``aws`` the task fails naming both options.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from stepflow.integrations import default_registry
from stepflow.runtime.clients import FixedClients
from stepflow.testing import WorkflowEnvironment, execute

from tests.moto_env import REGION, offline_aws

SEND = "arn:aws:states:::sqs:sendMessage"


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with offline_aws(monkeypatch):
        yield boto3.client("sqs", region_name=REGION)


def messages(sqs: Any, url: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
        "Messages", []
    )
    return got


def send(url: str, resource: str = SEND) -> dict[str, Any]:
    body: dict[str, Any] = {"order.$": "$.order"}
    if resource.endswith(".waitForTaskToken"):
        body["token.$"] = "$$.Task.Token"
    state = {"Type": "Task", "Resource": resource, "End": True}
    state["Parameters"] = {"QueueUrl": url, "MessageBody": body}
    return {"StartAt": "Send", "States": {"Send": state}}


def test_send_message_wait_for_task_token_in_memory_against_moto(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="orders")["QueueUrl"]
    env = WorkflowEnvironment(aws=True)
    arn = env.start(send(url, f"{SEND}.waitForTaskToken"), {"order": 7})
    env.run(arn)
    [message] = messages(sqs, url)
    body = json.loads(message["Body"])
    [task] = env.open_tasks(arn)
    assert body == {"order": 7, "token": task.token}
    env.complete(body["token"], {"shipped": True})
    result = env.result(arn)
    assert (result.status, json.loads(result.output or "")) == ("SUCCEEDED", {"shipped": True})
    task_events = [
        e for e in result.history if e["type"].startswith("Task") and "State" not in e["type"]
    ]
    assert [e["type"] for e in task_events] == [
        "TaskScheduled",
        "TaskStarted",
        "TaskSubmitted",
        "TaskSucceeded",
    ]
    submitted = json.loads(task_events[2]["taskSubmittedEventDetails"]["output"])
    assert submitted["MessageId"] == message["MessageId"]
    assert messages(sqs, url) == []  # sent once (the one received stays in flight)


@pytest.mark.parametrize("durable", ["memory", "moto"])
def test_execute_with_aws_sends_the_message_and_returns_sqs_response(
    sqs: Any, durable: str
) -> None:
    url = sqs.create_queue(QueueName="orders")["QueueUrl"]
    result = execute(send(url), {"order": 8}, aws=True, durable=durable)
    assert result.status == "SUCCEEDED", result.cause
    output = json.loads(result.output or "")
    [message] = messages(sqs, url)
    assert (output["MessageId"], output["MD5OfMessageBody"]) == (
        message["MessageId"],
        message["MD5OfBody"],
    )
    assert json.loads(message["Body"])["order"] == 8
    assert output["SdkHttpMetadata"]["HttpStatusCode"] == 200


def test_a_bound_handler_runs_instead_of_aws(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="orders")["QueueUrl"]
    result = execute(send(url), {"order": 9}, aws=True, handlers={SEND: lambda p: {"stub": 1}})
    assert json.loads(result.output or "") == {"stub": 1}
    assert messages(sqs, url) == []


def test_a_task_clients_value_hands_out_the_clients(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="orders")["QueueUrl"]
    result = execute(send(url), {"order": 10}, aws=FixedClients(sqs=sqs))
    assert result.status == "SUCCEEDED", result.cause
    assert len(messages(sqs, url)) == 1


def test_without_a_handler_or_aws_the_task_fails_naming_both_options() -> None:
    result = execute(send("https://sqs.us-east-1.amazonaws.com/123456789012/q"), {"order": 1})
    assert (result.status, result.error) == ("FAILED", "States.TaskFailed")
    assert "handlers=" in (result.cause or "") and "aws=True" in (result.cause or "")


@pytest.mark.parametrize("queue", [None, 7, ["q"]])
def test_a_queue_url_that_is_not_a_string_fails_before_any_call(sqs: Any, queue: Any) -> None:
    definition = send("placeholder")
    parameters = definition["States"]["Send"]["Parameters"]
    if queue is None:
        del parameters["QueueUrl"]
    else:
        parameters["QueueUrl"] = queue
    result = execute(definition, {"order": 1}, aws=True)
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "QueueUrl" in (result.cause or "")


def test_a_dynamodb_put_item_workflow_writes_a_real_moto_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    put = "arn:aws:states:::dynamodb:putItem"
    if default_registry().find(put) is None:  # the module lands on its own branch
        pytest.skip("no dynamodb integration registered")
    state = {
        "Type": "Task",
        "Resource": put,
        "Parameters": {"TableName": "orders", "Item": {"id": {"S.$": "$.id"}}},
        "End": True,
    }
    with offline_aws(monkeypatch):
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(
            TableName="orders",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        result = execute({"StartAt": "Put", "States": {"Put": state}}, {"id": "o-1"}, aws=True)
        assert result.status == "SUCCEEDED", result.cause
        items = dynamodb.scan(TableName="orders")["Items"]
    assert items == [{"id": {"S": "o-1"}}]
