"""Built-in AWS effects on moto, through the integrations, counted with botocore's events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field
from stepflow.cells import (
    Cell,
    CellContext,
    CellModules,
    CellRegistry,
    EffectCall,
    EffectHandlers,
    LogJournal,
)
from stepflow.cells.builtin import (
    AwsCall,
    DynamoPutItem,
    EventBridgePutEvents,
    EventEntry,
    HttpRequest,
    SnsPublish,
    SqsSendMessage,
)
from stepflow.cells.effects import IdempotencyKey
from stepflow.integrations.effect_handlers import builtin_handlers
from stepflow.runtime.clients import FixedClients
from stepflow.testing import open_environment

from tests.integration.cell_effects_support import (
    ARN,
    FAST,
    Crash,
    Mark,
    Nope,
    Note,
    noting_modules,
    one_cell_machine,
    runtime_of,
    task_body,
)

# -- AWS on moto -------------------------------------------------------------------------------


class Order(BaseModel):
    id: str
    table: str


class Written(BaseModel):
    id: str


AwsEffects = Annotated[DynamoPutItem | AwsCall | Note, Field(discriminator="kind")]


class SaveOrder(Cell[Order, Written, Nope, AwsEffects]):
    """Writes the order, reads it back through the SDK integration, then notes it."""

    name = "save-order"

    def run(self, ctx: CellContext[AwsEffects], data: Order) -> Written:
        ctx.effect(DynamoPutItem(table=data.table, item={"id": {"S": data.id}}))
        read = ctx.effect(
            AwsCall(
                service="dynamodb",
                action="getItem",
                parameters={"TableName": data.table, "Key": {"id": {"S": data.id}}},
            )
        )
        ctx.effect(Note(n=len(read["Item"])))
        return Written(id=read["Item"]["id"]["S"])


@dataclass
class Counted:
    """A boto3 client whose calls of each operation are counted."""

    client: Any
    calls: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def count(model: Any, **kwargs: Any) -> None:
            self.calls[model.name] = self.calls.get(model.name, 0) + 1

        self.client.meta.events.register("before-call", count)


@pytest.fixture
def moto() -> Iterator[dict[str, Counted]]:
    from moto import mock_aws
    from stepflow.aws.clients import client as new_client

    with mock_aws():
        dynamodb = new_client("dynamodb")
        dynamodb.create_table(
            TableName="orders",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield {name: Counted(new_client(name)) for name in ("dynamodb", "sqs", "sns", "events")}


def _aws(moto: dict[str, Counted]) -> FixedClients:
    return FixedClients(**{name: counted.client for name, counted in moto.items()})


def test_dynamodb_put_item_effect_writes_once_across_a_crash_on_the_dynamodb_log(
    moto: dict[str, Counted],
) -> None:
    from stepflow.aws import DynamoDBLog, create_table
    from stepflow.aws.clients import client as new_client

    log_client = new_client("dynamodb")
    create_table(log_client, "stepflow-log")
    log = DynamoDBLog("stepflow-log", client=log_client)
    notes: list[int] = []
    user = EffectHandlers()

    def note(effect: Note, call: EffectCall) -> Mark:
        if not notes:
            notes.append(-1)
            raise Crash  # dies after the put and the get were recorded
        notes.append(effect.n)
        return Mark(n=effect.n)

    user.register(Note, note)
    handlers = builtin_handlers(None, _aws(moto), policy=FAST).merged(user)
    body = task_body("save-order", {"id": "o-1", "table": "orders"})
    with pytest.raises(Crash):
        runtime_of(LogJournal(log), handlers, SaveOrder)(body)
    outcome = runtime_of(LogJournal(log), handlers, SaveOrder)(body)
    assert outcome.ok and outcome.output == {"id": "o-1"}
    assert moto["dynamodb"].calls == {"PutItem": 1, "GetItem": 1}
    assert [t["replayed"] for t in outcome.effects] == [True, True, False]
    assert notes == [-1, 1]
    item = moto["dynamodb"].client.get_item(TableName="orders", Key={"id": {"S": "o-1"}})
    assert item["Item"] == {"id": {"S": "o-1"}}


def test_aws_effects_run_through_the_stepper_lambda_on_moto(moto: dict[str, Counted]) -> None:
    notes: list[int] = []
    modules = noting_modules(SaveOrder, notes)
    definition = one_cell_machine("Save", "save-order")
    with open_environment("moto", cells=modules, aws=_aws(moto)) as env:
        arn = env.start(definition, {"id": "o-2", "table": "orders"})
        env.run(arn)
        result = env.result(arn)
        assert result.status == "SUCCEEDED", result.cause
        assert moto["dynamodb"].calls == {"PutItem": 1, "GetItem": 1}
        assert notes == [1]
        # StepFlow's own table (the DynamoDB log) is never an effect's target.
        arn = env.start(definition, {"id": "o-3", "table": "stepflow-testing"})
        env.run(arn)
        refused = env.result(arn)
        assert refused.status == "FAILED"
        assert refused.error == "States.Runtime"
        assert "target is a StepFlow resource" in (refused.cause or "")
        assert moto["dynamodb"].calls == {"PutItem": 1, "GetItem": 1}


def test_a_conditional_put_fails_with_the_dynamodb_error_name_once(
    moto: dict[str, Counted],
) -> None:
    handlers = builtin_handlers(None, _aws(moto), policy=FAST)
    call = EffectCall(IdempotencyKey(ARN, "S", "t", 0), {"role_arn": "r"})
    put = DynamoPutItem(
        table="orders", item={"id": {"S": "o-9"}}, condition_expression="attribute_not_exists(id)"
    )
    handlers.perform(put, call)
    with pytest.raises(Exception) as failure:
        handlers.perform(put, call)
    assert getattr(failure.value, "error", None) == "DynamoDB.ConditionalCheckFailedException"
    assert moto["dynamodb"].calls == {"PutItem": 2}  # a permanent error: not retried


def test_sqs_fifo_gets_the_idempotency_key_as_deduplication_id(moto: dict[str, Counted]) -> None:
    sqs = moto["sqs"].client
    url = sqs.create_queue(QueueName="orders.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    handlers = builtin_handlers(None, _aws(moto), policy=FAST)
    call = EffectCall(IdempotencyKey(ARN, "S", "t", 0))
    send = SqsSendMessage(queue_url=url, message_body={"order": 1}, message_group_id="g")
    assert handlers.perform(send, call)["message_id"]
    handlers.perform(send, call)  # an unrecorded repeat (a crash before the record)
    assert moto["sqs"].calls["SendMessage"] == 2
    received = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["MessageDeduplicationId"]
    )["Messages"]
    assert len(received) == 1  # SQS dropped the repeat
    assert json.loads(received[0]["Body"]) == {"order": 1}
    assert received[0]["Attributes"]["MessageDeduplicationId"] == call.key.token


def test_sns_and_eventbridge_effects(moto: dict[str, Counted]) -> None:
    topic = moto["sns"].client.create_topic(Name="orders")["TopicArn"]
    handlers = builtin_handlers(None, _aws(moto), policy=FAST)
    call = EffectCall(IdempotencyKey(ARN, "S", "t", 0))
    published = handlers.perform(SnsPublish(topic_arn=topic, message={"order": 1}), call)
    assert published["message_id"]
    sent = handlers.perform(
        EventBridgePutEvents(
            entries=[EventEntry(source="shop", detail_type="Ordered", detail={"id": 1})]
        ),
        call,
    )
    assert sent["failed_entry_count"] == 0 and len(sent["entries"]) == 1
    assert moto["sns"].calls["Publish"] == 1 and moto["events"].calls == {"PutEvents": 1}


def test_an_effect_on_the_stacks_own_queue_is_refused_in_the_wiring(
    moto: dict[str, Counted], monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepflow.aws.settings import Settings
    from stepflow.aws.wiring import build

    queue = "https://sqs.us-east-1.amazonaws.com/123456789012/stepflow-transitions"
    settings = Settings.from_environ(
        {
            "TABLE_NAME": "stepflow-log",
            "QUEUE_URL": queue,
            "AWS_REGION": "us-east-1",
            "STEPFLOW_SIGNING_KEY": "test-signing-key-" + "0" * 32,
        }
    )
    wiring = build(settings, clients={"sqs": moto["sqs"].client})
    call = EffectCall(IdempotencyKey(ARN, "S", "t", 0), {"role_arn": "r"})
    for effect in (
        SqsSendMessage(queue_url=queue, message_body="x"),
        AwsCall(service="sqs", action="purgeQueue", parameters={"QueueUrl": queue}),
        DynamoPutItem(table="stepflow-log", item={"pk": {"S": "x"}}),
    ):
        with pytest.raises(Exception) as failure:
            wiring.effect_handlers.perform(effect, call)
        assert getattr(failure.value, "error", None) == "States.Runtime"
        assert "target is a StepFlow resource" in getattr(failure.value, "cause", "")
    assert moto["sqs"].calls == {} and moto["dynamodb"].calls == {}
    assert wiring.cell_runtime.handlers.find(SqsSendMessage) is wiring.effect_handlers.find(
        SqsSendMessage
    )


def test_the_users_handler_of_a_builtin_effect_wins() -> None:
    from stepflow.testing import WorkflowEnvironment

    def mine(effect: HttpRequest, call: EffectCall) -> Any:
        return {"status": 299}

    modules = CellModules(CellRegistry(), EffectHandlers())
    modules.handlers.register(HttpRequest, mine)
    env = WorkflowEnvironment(cells=modules)
    assert env.cell_runtime.handlers.find(HttpRequest) is mine
    assert isinstance(env.cell_runtime.handlers.find(DynamoPutItem), object)


def test_aws_throttling_is_retried_and_other_aws_errors_are_not() -> None:
    import boto3
    from botocore.config import Config
    from botocore.stub import Stubber

    sqs = boto3.client(
        "sqs",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}),
    )
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/orders"
    handlers = builtin_handlers(None, FixedClients(sqs=sqs), policy=FAST)
    call = EffectCall(IdempotencyKey(ARN, "S", "t", 0))
    send = SqsSendMessage(queue_url=url, message_body="x")
    with Stubber(sqs) as stub:
        for _ in range(2):
            stub.add_client_error("send_message", "ThrottlingException", http_status_code=400)
        stub.add_response("send_message", {"MessageId": "m-1", "MD5OfMessageBody": "d"})
        assert handlers.perform(send, call)["message_id"] == "m-1"
        stub.assert_no_pending_responses()  # exactly three calls
        stub.add_client_error("send_message", "QueueDoesNotExist", http_status_code=400)
        with pytest.raises(Exception) as failure:
            handlers.perform(send, call)
        stub.assert_no_pending_responses()
    assert str(getattr(failure.value, "error", "")).startswith("SQS.")
    assert "QueueDoesNotExist" in str(getattr(failure.value, "error", ""))
