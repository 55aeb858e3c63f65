"""Over ``stepflow local`` with boto3: StepFlow's own resources are refused as task targets.

A workflow any API caller can create tries to forge a message on StepFlow's
transition queue (``sqs:sendMessage.waitForTaskToken``) and to invoke its
stepper (``lambda:invoke``, a Lambda resource ARN): each execution fails with
``States.Runtime`` and nothing is sent (the SQS sends the task integrations make
are counted, and the own DLQs stay empty). The same stack sends a user queue's
message exactly once, with the state's ``Credentials.RoleArn`` assumed through
moto's STS by the execution role's session (role chaining, proved by the key
that signs the second AssumeRole).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.local import LocalStack
from stepflow.local.stack import FUNCTIONS
from stepflow.runtime.targets import OWN_TARGET_CAUSE

from tests.e2e.waiting import wait_for
from tests.sts_wire import Wire

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/stepflow/OrdersRole"
STATE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/stepflow/PaymentsRole"
CALLBACKS_ROLE = f"arn:aws:iam::{ACCOUNT}:role/stepflow/CallbacksRole"
SEND = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
INVOKE = "arn:aws:states:::lambda:invoke"


class CountingSQS:
    """The task clients' SQS client, counting the sends per queue URL."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sent: list[str] = []

    def send_message(self, **request: Any) -> Any:
        self.sent.append(str(request["QueueUrl"]))
        return self.inner.send_message(**request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0, assume_roles=True) as running:
        yield running


def run(stack: LocalStack, name: str, state: dict[str, Any]) -> dict[str, Any]:
    sfn = stack.stepfunctions()
    definition = {"StartAt": "T", "States": {"T": {**state, "End": True}}}
    machine = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)
    execution = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], input="{}")
    return wait_for(sfn, execution["executionArn"])


def count_messages(stack: LocalStack, url: str) -> int:
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


@pytest.fixture
def sends(stack: LocalStack) -> Iterator[CountingSQS]:
    assert stack.wiring is not None
    clients = stack.wiring.task_clients
    counting = CountingSQS(clients.clients_given["sqs"])
    clients.clients_given["sqs"] = counting
    clients.assume_roles = False  # the given (counted) client serves every role
    try:
        yield counting
    finally:
        clients.clients_given["sqs"] = counting.inner
        clients.assume_roles = True


def test_a_forged_message_to_the_transition_queue_fails_the_execution_and_sends_nothing(
    stack: LocalStack, sends: CountingSQS
) -> None:
    assert stack.wiring is not None
    settings = stack.wiring.settings
    dlqs = settings.own_queues.split(",")
    for index, url in enumerate([settings.queue_url, settings.tasks_queue_url, *dlqs]):
        described = run(
            stack,
            f"forge-{index}",
            {
                "Type": "Task",
                "Resource": SEND,
                "Parameters": {
                    "QueueUrl": url,
                    "MessageBody": {"kind": "event", "token.$": "$$.Task.Token"},
                },
                "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2}],
            },
        )
        assert described["status"] == "FAILED"
        assert described["error"] == "States.Runtime"
        assert OWN_TARGET_CAUSE in described["cause"]
    assert sends.sent == []
    assert [count_messages(stack, url) for url in dlqs] == [0, 0]


@pytest.mark.parametrize(
    "state",
    [
        {"Resource": INVOKE, "Parameters": {"FunctionName": "stepflow-stepper", "Payload": {}}},
        {
            "Resource": INVOKE,
            "Parameters": {"FunctionName": f"{ACCOUNT}:function:stepflow-runner:live"},
        },
        {"Resource": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:stepflow-api"},
    ],
)
def test_invoking_a_stepflow_function_fails_the_execution(
    stack: LocalStack, state: dict[str, Any]
) -> None:
    name = f"invoke-{abs(hash(json.dumps(state))) % 10**8}"
    described = run(stack, name, {"Type": "Task", **state})
    assert (described["status"], described["error"]) == ("FAILED", "States.Runtime")
    assert OWN_TARGET_CAUSE in described["cause"]
    assert set(FUNCTIONS) >= {"stepflow-stepper", "stepflow-runner", "stepflow-api"}


def test_a_user_queue_gets_the_message_once_with_the_states_role_chained(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Credentials.RoleArn`` is assumed with the execution role's session, never directly."""
    assert stack.wiring is not None
    clients = stack.wiring.task_clients
    wire = Wire()
    sts = wire.hook(clients._sts_client())
    chained_sts = clients._sts_as
    monkeypatch.setattr(clients, "_sts_as", lambda credentials: wire.hook(chained_sts(credentials)))
    before = len(clients.assume_calls)
    sqs = stack.client("sqs")
    url = sqs.create_queue(QueueName="orders-callbacks")["QueueUrl"]
    sfn = stack.stepfunctions()
    state = {
        "Type": "Task",
        "Resource": SEND,
        "Credentials": {"RoleArn.$": "$.role"},
        "Parameters": {"QueueUrl": url, "MessageBody": {"token.$": "$$.Task.Token"}},
        "End": True,
    }
    definition = {"StartAt": "T", "States": {"T": state}}
    machine = sfn.create_state_machine(
        name="user-queue", definition=json.dumps(definition), roleArn=CALLBACKS_ROLE
    )
    try:
        execution = sfn.start_execution(
            stateMachineArn=machine["stateMachineArn"], input=json.dumps({"role": STATE_ROLE})
        )["executionArn"]
        received: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            received = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
    finally:
        wire.unhook(sts)
    assert len(received) == 1
    token = json.loads(received[0]["Body"])["token"]
    sfn.send_task_success(taskToken=token, output=json.dumps({"paid": True}))
    assert wait_for(sfn, execution)["status"] == "SUCCEEDED"
    assert count_messages(stack, url) == 1  # the one received, not deleted: no second send
    # two AssumeRole calls: the execution role by StepFlow, then the states role BY its session
    assert [role for role, _ in clients.assume_calls[before:]] == [CALLBACKS_ROLE, STATE_ROLE]
    assert [role for role, _, _ in wire.requests] == [CALLBACKS_ROLE, STATE_ROLE]
    signers = [signer.split(":assumed-role/")[-1].split("/")[0] for signer in wire.signers()]
    assert signers == ["process", "CallbacksRole"]
    sent_as = clients.for_task("sqs", STATE_ROLE, via=CALLBACKS_ROLE)  # cached: no third call
    key = sent_as._request_signer._credentials.get_frozen_credentials().access_key
    assert "/PaymentsRole/" in wire.issued[key] and len(clients.assume_calls) == before + 2


SDK = "arn:aws:states:::aws-sdk:"


class Recording:
    """A task client recording every call made through it (a refused task makes none)."""

    def __init__(self, service: str, inner: Any, calls: list[str]) -> None:
        self.service, self.inner, self.calls = service, inner, calls

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.inner, name)
        if not callable(found) or name.startswith("_") or name in ("can_paginate", "meta"):
            return found

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(f"{self.service}.{name}")
            return found(*args, **kwargs)

        return call


@pytest.fixture
def task_calls(stack: LocalStack) -> Iterator[list[str]]:
    """Every call the task integrations make, on the clients of every service they may use."""
    assert stack.wiring is not None
    clients = stack.wiring.task_clients
    saved = dict(clients.clients_given)
    calls: list[str] = []
    for service in ("dynamodb", "sqs", "s3", "lambda", "secretsmanager"):
        inner = saved.get(service) or stack.client(service)
        clients.clients_given[service] = Recording(service, inner, calls)
    clients.assume_roles = False
    try:
        yield calls
    finally:
        clients.clients_given.clear()
        clients.clients_given.update(saved)
        clients.assume_roles = True


def a_log_item(stack: LocalStack) -> dict[str, Any]:
    """The key of one item of StepFlow's table (a state machine's record)."""
    stack.stepfunctions().create_state_machine(
        name="victim",
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
        roleArn=ROLE,
    )
    item = stack.client("dynamodb").scan(TableName=TABLE, Limit=1)["Items"][0]
    return {"pk": item["pk"], "sk": item["sk"]}


TABLE = "stepflow-local"
FORGED = {"pk": {"S": "forged"}, "sk": {"S": "forged"}, "x": {"S": "1"}}


def test_sdk_writes_naming_the_log_anywhere_are_refused_and_the_table_is_untouched(
    stack: LocalStack, task_calls: list[str]
) -> None:
    dynamodb = stack.client("dynamodb")
    victim = a_log_item(stack)
    states = [
        {
            "Resource": f"{SDK}dynamodb:batchWriteItem",
            "Parameters": {
                "RequestItems": {
                    TABLE: [{"PutRequest": {"Item": FORGED}}, {"DeleteRequest": {"Key": victim}}]
                }
            },
        },
        {
            "Resource": f"{SDK}dynamodb:transactWriteItems",
            "Parameters": {
                "TransactItems": [
                    {"Put": {"TableName": TABLE, "Item": FORGED}},
                    {
                        "Delete": {
                            "TableName": f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{TABLE}",
                            "Key": victim,
                        }
                    },
                ]
            },
        },
        {
            "Resource": f"{SDK}dynamodb:executeStatement",
            "Parameters": {"Statement": f"DELETE FROM \"{TABLE}\" WHERE pk = 'x' AND sk = 'y'"},
        },
        {"Resource": f"{SDK}dynamodb:deleteTable", "Parameters": {"TableName": TABLE}},
    ]
    for index, state in enumerate(states):
        described = run(stack, f"sdk-log-{index}", {"Type": "Task", **state})
        assert (described["status"], described["error"]) == ("FAILED", "States.Runtime")
        assert f"{OWN_TARGET_CAUSE}: table " in described["cause"]
    assert task_calls == []
    assert "Item" in dynamodb.get_item(TableName=TABLE, Key=victim)
    assert "Item" not in dynamodb.get_item(
        TableName=TABLE, Key={"pk": FORGED["pk"], "sk": FORGED["sk"]}
    )


def test_sdk_batches_to_the_queues_copies_from_the_bucket_and_code_updates_are_refused(
    stack: LocalStack, task_calls: list[str]
) -> None:
    assert stack.wiring is not None
    settings = stack.wiring.settings
    dlqs = settings.own_queues.split(",")
    s3 = stack.client("s3")
    s3.create_bucket(Bucket="user-copies")
    s3.put_object(Bucket=settings.payload_bucket, Key="payloads/secret", Body=b"internal")
    before = [count_messages(stack, url) for url in dlqs]
    entries = [{"Id": "1", "MessageBody": json.dumps({"kind": "event"})}]
    states = [
        *(
            {
                "Resource": f"{SDK}sqs:sendMessageBatch",
                "Parameters": {"QueueUrl": url, "Entries": entries},
            }
            for url in [settings.queue_url, settings.tasks_queue_url, *dlqs]
        ),
        {
            "Resource": f"{SDK}s3:copyObject",
            "Parameters": {
                "Bucket": "user-copies",
                "Key": "stolen",
                "CopySource": f"{settings.payload_bucket}/payloads/secret",
            },
        },
        {
            "Resource": f"{SDK}lambda:updateFunctionCode",
            "Parameters": {"FunctionName": "stepflow-stepper", "ZipFile": "UEsDBA=="},
        },
    ]
    for index, state in enumerate(states):
        described = run(stack, f"sdk-own-{index}", {"Type": "Task", **state})
        assert (described["status"], described["error"]) == ("FAILED", "States.Runtime")
        assert OWN_TARGET_CAUSE in described["cause"]
    assert task_calls == []
    assert [count_messages(stack, url) for url in dlqs] == before == [0, 0]
    assert s3.list_objects_v2(Bucket="user-copies").get("KeyCount", 0) == 0


def test_an_sdk_call_on_user_resources_runs_once(stack: LocalStack, task_calls: list[str]) -> None:
    dynamodb = stack.client("dynamodb")
    dynamodb.create_table(
        TableName="orders",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    state = {
        "Type": "Task",
        "Resource": f"{SDK}dynamodb:batchWriteItem",
        "Parameters": {"RequestItems": {"orders": [{"PutRequest": {"Item": {"id": {"S": "7"}}}}]}},
    }
    described = run(stack, "sdk-user", state)
    assert described["status"] == "SUCCEEDED", described
    assert task_calls == ["dynamodb.batch_write_item"]
    assert dynamodb.scan(TableName="orders", Select="COUNT")["Count"] == 1
