"""The local stream poller on moto's DynamoDB stream: Lambda's event shape, resuming at the
first failed record, giving a record up after its retries, new shards from their start."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config

from tests.moto_env import offline_aws

boto3 = pytest.importorskip("boto3")

from stepflow.aws import create_table  # noqa: E402
from stepflow.aws.settings import Settings  # noqa: E402
from stepflow.aws.wiring import HOOK_FACTORIES, UnknownHookError, hooks_from_settings  # noqa: E402
from stepflow.local.stream_poller import StreamPoller, ensure_stream  # noqa: E402

TABLE = "stepflow-poller"


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any, str]]:
    with offline_aws(monkeypatch):
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(dynamodb, TABLE)
        stream = ensure_stream(dynamodb, TABLE)
        assert ensure_stream(dynamodb, TABLE) == stream  # enabled once
        streams = boto3.client(
            "dynamodbstreams",
            region_name="us-east-1",
            config=Config(account_id_endpoint_mode="disabled"),
        )
        yield dynamodb, streams, stream


def put(dynamodb: Any, n: int) -> None:
    item = {"pk": {"S": "EX#a"}, "sk": {"S": f"EV#{n:012d}"}, "z": {"B": b"\x00\xff"}}
    dynamodb.put_item(TableName=TABLE, Item=item)


class Handler:
    """Accepts records, failing the record with ``fail_at`` (its n) ``failures`` times."""

    def __init__(self, fail_at: int | None = None, failures: int = 0) -> None:
        self.seen: list[int] = []
        self.fail_at, self.failures = fail_at, failures
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        failed: list[dict[str, str]] = []
        for record in event["Records"]:
            n = int(record["dynamodb"]["Keys"]["sk"]["S"][3:])
            if failed or (n == self.fail_at and self.failures):
                if not failed:
                    self.failures -= 1
                failed.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
                continue
            self.seen.append(n)
        return {"batchItemFailures": failed}


def test_records_arrive_in_lambda_shape_and_a_failed_one_is_retried_from_itself(
    table: tuple[Any, Any, str],
) -> None:
    dynamodb, streams, stream = table
    handler = Handler(fail_at=3, failures=2)
    poller = StreamPoller(streams, stream, handler)
    for shard in poller._shards():  # as start() does, without the thread
        poller._iterators[shard] = poller._iterator(shard, "LATEST")
    for n in range(1, 6):
        put(dynamodb, n)
    while poller.poll_once():
        pass
    assert handler.seen == [1, 2, 3, 4, 5]  # each once, in order
    assert poller.delivered == 5 and poller.given_up == []
    record = handler.events[0]["Records"][0]
    assert record["eventName"] == "INSERT" and record["eventSourceARN"] == stream
    assert base64.b64decode(record["dynamodb"]["NewImage"]["z"]["B"]) == b"\x00\xff"
    assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], float)


def test_a_record_failing_every_retry_is_given_up_and_the_rest_delivered(
    table: tuple[Any, Any, str],
) -> None:
    dynamodb, streams, stream = table
    handler = Handler(fail_at=2, failures=100)
    poller = StreamPoller(streams, stream, handler, max_retries=2)
    for n in range(1, 4):
        put(dynamodb, n)
    while poller.poll_once():  # a shard found after start: read from its start
        pass
    assert handler.seen == [1, 3]
    assert len(poller.given_up) == 1
    assert handler.failures == 100 - 3  # the first delivery and two retries


def test_hooks_from_settings_builds_the_named_hooks_in_order_and_refuses_unknown_ones() -> None:
    class Named:
        kinds = None

        def __init__(self, name: str) -> None:
            self.name = name

        def handle(self, events: Any) -> None:
            return None

    settings = Settings(table_name="t", hooks=" b, a ,b")
    HOOK_FACTORIES.update({"a": lambda s, c: Named("a"), "b": lambda s, c: Named("b")})
    try:
        assert [h.name for h in hooks_from_settings(settings, lambda _: None)] == ["b", "a"]
        assert hooks_from_settings(Settings(table_name="t"), lambda _: None) == []
        with pytest.raises(UnknownHookError, match="nope"):
            hooks_from_settings(Settings(table_name="t", hooks="a,nope"), lambda _: None)
    finally:
        del HOOK_FACTORIES["a"], HOOK_FACTORIES["b"]


def test_the_function_entry_point_is_the_dispatcher_handler() -> None:
    from stepflow.aws import hooks_lambda

    from functions.hooks.handler import handler

    assert handler is hooks_lambda.handler
