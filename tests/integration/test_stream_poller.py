"""The local stream poller on moto's DynamoDB stream: Lambda's event shape, resuming at the
first failed record, giving a record up after its retries, new shards from their start."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
from botocore.config import Config

from tests.moto_env import offline_aws

boto3 = pytest.importorskip("boto3")

from stepflow.aws import create_table  # noqa: E402
from stepflow.aws.settings import Settings  # noqa: E402
from stepflow.aws.wiring import HOOK_FACTORIES, UnknownHookError, hooks_from_settings  # noqa: E402
from stepflow.local.stream_poller import KEPT, StreamPoller, ensure_stream  # noqa: E402

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


class Clock:
    """A clock that moves ``step`` seconds each time it is read (or when moved by hand)."""

    def __init__(self, step: float = 0.0) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class FakeStreams:
    """One shard holding ``count`` records (sequence numbers 1..count); iterators are indexes."""

    def __init__(self, count: int) -> None:
        self.records = [
            {"eventName": "INSERT", "dynamodb": {"SequenceNumber": str(n), "Keys": {}}}
            for n in range(1, count + 1)
        ]

    def describe_stream(self, **request: Any) -> dict[str, Any]:
        return {"StreamDescription": {"Shards": [{"ShardId": "s"}]}}

    def get_shard_iterator(self, **request: Any) -> dict[str, Any]:
        number = request.get("SequenceNumber")
        index = 0 if number is None else int(number) - 1
        after = request["ShardIteratorType"] == "AFTER_SEQUENCE_NUMBER"
        return {"ShardIterator": str(index + after)}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:  # noqa: N803
        start = int(ShardIterator)
        page = self.records[start : start + Limit]
        return {"Records": page, "NextShardIterator": str(start + len(page))}


def numbers_of(event: dict[str, Any]) -> list[str]:
    return [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]


def test_a_handler_that_raises_gets_the_batch_again_and_nothing_is_lost() -> None:
    calls: list[list[str]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(numbers_of(event))
        if len(calls) == 1:
            raise RuntimeError("a cold start failed")
        return {"batchItemFailures": []}

    poller = StreamPoller(FakeStreams(3), "arn", handler, clock=Clock(step=100.0))
    for _ in range(4):
        poller.poll_once()
    assert calls == [["1", "2", "3"], ["1", "2", "3"]]  # again from the first record, once
    assert poller.delivered == 3 and poller.given_up == []
    assert [str(e) for e in poller.errors] == ["a cold start failed"]


def test_an_outage_longer_than_the_retries_is_retried_with_backoff_not_given_up() -> None:
    clock = Clock()
    outage_until = 20.0  # seconds: far more than max_retries quick retries
    calls: list[tuple[float, list[str]]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append((clock.now, numbers_of(event)))
        if clock.now < outage_until:  # e.g. the webhook target or DynamoDB is down
            failed = [n for n in numbers_of(event) if n != "1"]  # record 1 went through
            return {"batchItemFailures": [{"itemIdentifier": n} for n in failed]}
        return {"batchItemFailures": []}

    poller = StreamPoller(FakeStreams(3), "arn", handler, max_retries=3, clock=clock)
    while clock.now < 40.0:
        poller.poll_once()
        clock.now += 0.1
    assert poller.given_up == [] and poller.delivered == 3
    assert calls[0][1] == ["1", "2", "3"] and {tuple(n) for _, n in calls[1:]} == {("2", "3")}
    waits = [b - a for (a, _), (b, _) in pairwise(calls)]
    assert all(later >= earlier for earlier, later in pairwise(waits))
    assert len(calls) < 12  # backoff: not one retry every poll (400 polls)


def test_a_record_is_given_up_only_after_its_retries_and_the_time_budget() -> None:
    clock = Clock()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": numbers_of(event)[0]}]}

    poller = StreamPoller(FakeStreams(1), "arn", handler, retry_budget=30.0, clock=clock)
    while clock.now < 29.0:
        poller.poll_once()
        clock.now += 0.1
    assert poller.given_up == []
    while clock.now < 60.0:
        poller.poll_once()
        clock.now += 0.1
    assert poller.given_up == ["1"]


def test_what_the_poller_remembers_is_bounded() -> None:
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise RuntimeError("always")

    count = KEPT + 30
    poller = StreamPoller(
        FakeStreams(count), "arn", handler, max_retries=0, retry_budget=0.0, clock=Clock(1.0)
    )
    for _ in range(count):
        poller.poll_once()
    assert poller.given_up_count == count and len(poller.given_up) == KEPT
    assert poller.given_up[-1] == str(count)
    assert len(poller.errors) == KEPT
    assert len(poller._retries) <= 1


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
    poller = StreamPoller(streams, stream, handler, clock=Clock(step=100.0))
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
    poller = StreamPoller(streams, stream, handler, max_retries=2, clock=Clock(step=100.0))
    for n in range(1, 4):
        put(dynamodb, n)
    while poller.poll_once():  # a shard found after start: read from its start
        pass
    assert handler.seen == [1, 3]
    assert len(poller.given_up) == 1 and poller.given_up_count == 1
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


class ExpiringStreams(FakeStreams):
    """FakeStreams whose iterators expire: each listed read fails once as AWS's would."""

    def __init__(self, count: int, expire_at_reads: set[int]) -> None:
        super().__init__(count)
        self.reads, self.expire_at_reads, self.issued = 0, expire_at_reads, []

    def get_shard_iterator(self, **request: Any) -> dict[str, Any]:
        self.issued.append((request["ShardIteratorType"], request.get("SequenceNumber")))
        return super().get_shard_iterator(**request)

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:  # noqa: N803
        self.reads += 1
        if self.reads in self.expire_at_reads:
            error = {"Error": {"Code": "ExpiredIteratorException", "Message": "expired"}}
            raise boto3.session.botocore.exceptions.ClientError(error, "GetRecords")
        return super().get_records(ShardIterator, Limit)


def test_an_expired_iterator_resumes_after_the_last_record_passed_nothing_twice() -> None:
    streams = ExpiringStreams(5, expire_at_reads={1, 3})
    streams.records, later = streams.records[:2], streams.records[2:]
    seen: list[str] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.extend(numbers_of(event))
        return {"batchItemFailures": []}

    poller = StreamPoller(streams, "arn", handler, clock=Clock())
    poller._origins["s"], poller._iterators["s"] = "TRIM_HORIZON", "0"
    for _ in range(3):
        poller.poll_once()
    streams.records += later
    for _ in range(4):
        poller.poll_once()
    assert seen == ["1", "2", "3", "4", "5"]  # each once, in order, across two expiries
    assert poller.renewed == 2 and poller.delivered == 5
    assert streams.issued == [("TRIM_HORIZON", None), ("AFTER_SEQUENCE_NUMBER", "2")]


def test_an_expired_iterator_during_a_retry_resumes_at_the_failed_record() -> None:
    streams = ExpiringStreams(3, expire_at_reads={2})
    seen: list[list[str]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append(numbers_of(event))
        failed = [] if len(seen) > 1 else [{"itemIdentifier": "2"}]
        return {"batchItemFailures": failed}

    poller = StreamPoller(streams, "arn", handler, clock=Clock(step=100.0))
    poller._origins["s"], poller._iterators["s"] = "TRIM_HORIZON", "0"
    for _ in range(4):
        poller.poll_once()
    assert seen == [["1", "2", "3"], ["2", "3"]]
    assert poller.delivered == 3 and poller.renewed == 1
    assert streams.issued[-1] == ("AT_SEQUENCE_NUMBER", "2")


def test_an_error_other_than_expiry_still_reaches_the_loop() -> None:
    streams = ExpiringStreams(1, expire_at_reads=set())

    def broken(**request: Any) -> dict[str, Any]:
        error = {"Error": {"Code": "InternalServerError", "Message": "down"}}
        raise boto3.session.botocore.exceptions.ClientError(error, "GetRecords")

    streams.get_records = broken  # type: ignore[method-assign]
    poller = StreamPoller(streams, "arn", lambda e, c: {}, clock=Clock())
    poller._iterators["s"] = "0"
    with pytest.raises(boto3.session.botocore.exceptions.ClientError):
        poller.poll_once()
    assert poller.renewed == 0
