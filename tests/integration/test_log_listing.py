"""Listing executions through their ``LIST`` entries (stepflow.aws.log_listing).

A head is no longer in the listing index (its projection is ALL: a head there was
copied, whole, on every commit); each listed execution has one immutable entry.
Both logs list the same pages; the DynamoDB log also lists heads written before the
entries existed, skips an entry whose head is gone, and writes no index key on a head.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from stepflow.runtime import (
    CoordinationLog,
    ExecutionAlreadyExistsError,
    ExecutionRecord,
    InMemoryLog,
)

from tests.moto_env import offline_aws

pytest.importorskip("moto")
boto3 = pytest.importorskip("boto3")

from stepflow.aws import DynamoDBLog, create_table  # noqa: E402

TABLE = "stepflow-listing"
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:Orders"
PREFIX = "arn:aws:states:us-east-1:123456789012:execution:Orders:"


@pytest.fixture(scope="module")
def aws() -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as env, offline_aws(env):
        yield boto3.client("dynamodb", region_name="us-east-1")


@pytest.fixture
def dynamodb(aws: Any) -> Iterator[Any]:
    create_table(aws, TABLE)
    yield aws
    aws.delete_table(TableName=TABLE)


@pytest.fixture(params=["memory", "dynamodb"])
def log(request: pytest.FixtureRequest) -> CoordinationLog:
    if request.param == "memory":
        return InMemoryLog()
    return DynamoDBLog(TABLE, client=request.getfixturevalue("dynamodb"))


def record(n: int, status: str = "RUNNING") -> ExecutionRecord:
    return ExecutionRecord(
        execution_arn=f"{PREFIX}e{n}",
        state_machine_arn=SM,
        name=f"e{n}",
        input={"n": n},
        status=status,
        seq=1,
        state={"n": n},
        outbox=(),
        start_date=1_000.0 + n,
        stop_date=None if status == "RUNNING" else 2_000.0 + n,
        attributes={},
    )


def names(log: CoordinationLog, status: str | None = None, limit: int = 2) -> list[list[str]]:
    pages, token = [], None
    while True:
        found, token = log.list_executions(SM, status=status, next_token=token, limit=limit)
        pages.append([r.name for r in found])
        if token is None:
            return pages


def flat(pages: list[list[str]]) -> list[str]:
    return [name for page in pages for name in page]


def test_pages_newest_first_with_the_status_of_the_latest_commit(log: CoordinationLog) -> None:
    # GIVEN five executions, two of them (e2, e4) finished by a later commit
    for n in range(1, 6):
        log.create(record(n), [{"id": 1, "type": "ExecutionStarted"}] if n % 2 else [])
    for n in (2, 4):
        log.commit(replace(record(n, "SUCCEEDED"), seq=2), 1, [])
    # WHEN listed two at a time THEN newest first, every execution once
    assert names(log) == [["e5", "e4"], ["e3", "e2"], ["e1"]]
    # AND the status filter reads the heads as committed last, across pages
    assert flat(names(log, "RUNNING")) == ["e5", "e3", "e1"]
    assert flat(names(log, "SUCCEEDED", limit=1)) == ["e4", "e2"]
    assert log.list_executions(SM, status="FAILED") == ([], None)
    # AND a refused second create of a name changes nothing in the listing
    with pytest.raises(ExecutionAlreadyExistsError):
        log.create(replace(record(3), start_date=9_999.0), [])
    assert flat(names(log, limit=10)) == ["e5", "e4", "e3", "e2", "e1"]


def test_a_commit_writes_no_listing_key_on_the_head(dynamodb: Any) -> None:
    # GIVEN an execution created with events and one created without
    log = DynamoDBLog(TABLE, client=dynamodb)
    log.create(record(1), [{"id": 1, "type": "ExecutionStarted"}])
    log.create(record(2), [])
    log.commit(replace(record(1, "FAILED"), seq=2), 1, [{"id": 2, "type": "ExecutionFailed"}])
    # WHEN the listing index is read raw THEN it holds one small entry per execution, no head
    index = dynamodb.query(
        TableName=TABLE,
        IndexName="gsi1",
        KeyConditionExpression="gsi1pk = :p",
        ExpressionAttributeValues={":p": {"S": f"EXL#{SM}"}},
    )["Items"]
    assert sorted((i["pk"]["S"][-2:], i["sk"]["S"]) for i in index) == [
        ("e1", "LIST"),
        ("e2", "LIST"),
    ]
    assert all(set(i) == {"pk", "sk", "gsi1pk", "gsi1sk"} for i in index)


def test_older_heads_in_the_index_are_listed_and_entries_without_a_head_skipped(
    dynamodb: Any,
) -> None:
    log = DynamoDBLog(TABLE, client=dynamodb)
    log.create(record(1), [])
    log.create(record(3), [])
    # GIVEN a head written before the entries: it carries the index keys itself
    log.create(replace(record(2), attributes={"listed_under": ""}), [])
    dynamodb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": f"EX#{PREFIX}e2"}, "sk": {"S": "HEAD"}},
        UpdateExpression="SET gsi1pk = :p, gsi1sk = :s",
        ExpressionAttributeValues={
            ":p": {"S": f"EXL#{SM}"},
            ":s": {"S": f"{1_002.0:017.3f}#e2"},
        },
    )
    # AND an entry whose head is gone (expired, not purged yet)
    dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": f"EX#{PREFIX}e3"}, "sk": {"S": "HEAD"}})
    # WHEN listed THEN the older head is listed in its place and the orphan entry skipped
    assert names(log, limit=1) == [["e2"], ["e1"]]
    # AND a name whose leftover entry outlived its head is listed under the new start
    log.create(replace(record(3), start_date=5_000.0), [])
    assert flat(names(log, limit=5)) == ["e3", "e2", "e1"]
