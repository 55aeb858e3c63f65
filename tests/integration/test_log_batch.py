"""The log's batch read and write (get_many, put_many): the in-memory twin and DynamoDBLog alike.

On DynamoDB they are BatchGetItem (100 keys a request) and BatchWriteItem (25 items a
request); the requests are counted, and a client that leaves keys or items unprocessed
shows that they are sent again (and that it gives up as an outage, not silently).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from stepflow.runtime import CoordinationLog, ExecutionRecord, InMemoryLog
from stepflow.runtime.ports import UnstorableDataError

from tests.moto_env import offline_aws

pytest.importorskip("moto")
boto3 = pytest.importorskip("boto3")

from stepflow.aws import DynamoDBLog, LogUnavailableError, create_table  # noqa: E402
from stepflow.runtime.payloads import InMemoryPayloadStore  # noqa: E402

TABLE = "stepflow-log-batch"
RUN = "arn:aws:states:us-east-1:123456789012:execution:M:p#maprun/r"


class CountingClient:
    """A DynamoDB client that counts requests and can leave work unprocessed."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.keys_asked: list[int] = []
        self.unprocess = 0
        """How many next batch requests leave all but their first key or item undone."""

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr) or name.startswith("get_waiter"):
            return attr

        def call(**kwargs: Any) -> Any:
            self.calls[name] += 1
            if name == "batch_get_item":
                return self._get(kwargs)
            if name == "batch_write_item":
                return self._write(kwargs)
            return attr(**kwargs)

        return call

    def _get(self, kwargs: dict[str, Any]) -> Any:
        [(table, request)] = kwargs["RequestItems"].items()
        self.keys_asked.append(len(request["Keys"]))
        if self.unprocess and len(request["Keys"]) > 1:
            self.unprocess -= 1
            first, rest = request["Keys"][:1], request["Keys"][1:]
            response = self.inner.batch_get_item(RequestItems={table: {**request, "Keys": first}})
            response["UnprocessedKeys"] = {table: {**request, "Keys": rest}}
            return response
        return self.inner.batch_get_item(**kwargs)

    def _write(self, kwargs: dict[str, Any]) -> Any:
        [(table, requests)] = kwargs["RequestItems"].items()
        if self.unprocess and len(requests) > 1:
            self.unprocess -= 1
            response = self.inner.batch_write_item(RequestItems={table: requests[:1]})
            response["UnprocessedItems"] = {table: requests[1:]}
            return response
        return self.inner.batch_write_item(**kwargs)


@pytest.fixture(scope="module")
def aws() -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as env, offline_aws(env):
        yield boto3.client("dynamodb", region_name="us-east-1")


@pytest.fixture
def client(aws: Any) -> Iterator[CountingClient]:
    create_table(aws, TABLE)
    yield CountingClient(aws)
    aws.delete_table(TableName=TABLE)


@pytest.fixture(params=["memory", "dynamodb", "dynamodb-offloaded"])
def log(request: pytest.FixtureRequest) -> CoordinationLog:
    if request.param == "memory":
        return InMemoryLog()
    client = request.getfixturevalue("client")
    if request.param == "dynamodb-offloaded":  # documents over 600 bytes go to the store
        return DynamoDBLog(
            TABLE,
            client=client,
            payloads=InMemoryPayloadStore(),
            item_budget=600,
            sleep=lambda _: None,
        )
    return DynamoDBLog(TABLE, client=client, compress_above=64, sleep=lambda _: None)


def result(position: int, **changes: Any) -> ExecutionRecord:
    record = ExecutionRecord(
        execution_arn=f"{RUN}#xr/{position}",
        state_machine_arn="",
        name=str(position),
        input=None,
        status="SUCCEEDED",
        seq=0,
        state={"output": {"n": position, "text": "ü" * (position % 7) * 40}, "error": None},
        start_date=1_000.25,
        stop_date=1_001.5,
        attributes={"listed_under": ""},
    )
    return replace(record, **changes)


def test_get_many_returns_each_record_in_order_and_none_where_absent(log: CoordinationLog) -> None:
    records = [result(p) for p in range(0, 250, 2)]  # the even positions
    for record in records:
        log.create(record, [])
    asked = [f"{RUN}#xr/{p}" for p in range(250)]
    got = log.get_many(asked)
    assert got == [result(p) if p % 2 == 0 else None for p in range(250)]
    assert got == [log.get(arn) for arn in asked]  # the same as one read each
    assert log.get_many([]) == []


def test_get_many_reads_an_arn_asked_twice_once(log: CoordinationLog) -> None:
    log.create(result(1), [])
    arn = f"{RUN}#xr/1"
    assert log.get_many([arn, "nope", arn]) == [result(1), None, result(1)]


def test_put_many_stores_and_replaces_without_condition(log: CoordinationLog) -> None:
    log.create(result(3, status="FAILED", seq=4, state={"error": "E", "cause": "c"}), [])
    records = [result(p) for p in range(60)]
    log.put_many(records)
    assert log.get_many([r.execution_arn for r in records]) == records  # 3 replaced too
    log.put_many(records)  # again: the same records, harmless
    assert log.get(f"{RUN}#xr/3") == result(3)


def test_put_many_with_an_unstorable_record_writes_none(log: CoordinationLog) -> None:
    records = [result(0), result(1, state={"output": "\ud800"}), result(2)]
    with pytest.raises(UnstorableDataError):
        log.put_many(records)
    assert log.get_many([r.execution_arn for r in records]) == [None, None, None]


def test_requests_are_100_keys_and_25_items_each(client: CountingClient) -> None:
    log = DynamoDBLog(TABLE, client=client, sleep=lambda _: None)
    log.put_many([result(p) for p in range(251)])
    assert client.calls["batch_write_item"] == 11  # ceil(251 / 25)
    assert client.calls["put_item"] == 0
    got = log.get_many([f"{RUN}#xr/{p}" for p in range(251)])
    assert got == [result(p) for p in range(251)]
    assert client.calls["batch_get_item"] == 3 and client.keys_asked == [100, 100, 51]
    assert client.calls["get_item"] == 0


def test_unprocessed_keys_and_items_are_sent_again(client: CountingClient) -> None:
    waits: list[float] = []
    log = DynamoDBLog(TABLE, client=client, sleep=waits.append)
    client.unprocess = 2
    log.put_many([result(p) for p in range(10)])
    assert client.calls["batch_write_item"] == 3  # 10, then 9 left, then 8 left
    client.unprocess = 2
    got = log.get_many([f"{RUN}#xr/{p}" for p in range(10)])
    assert got == [result(p) for p in range(10)]
    assert client.calls["batch_get_item"] == 3
    assert waits == [0.05, 0.1, 0.05, 0.1]  # backing off before each resend


def test_work_left_unprocessed_too_long_is_an_outage(client: CountingClient) -> None:
    log = DynamoDBLog(TABLE, client=client, sleep=lambda _: None)
    client.unprocess = 100
    with pytest.raises(LogUnavailableError, match="unwritten"):
        log.put_many([result(p) for p in range(20)])
    with pytest.raises(LogUnavailableError, match="unread"):
        log.get_many([f"{RUN}#xr/{p}" for p in range(20)])
