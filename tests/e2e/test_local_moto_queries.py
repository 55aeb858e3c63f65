"""The local stack's moto: a Query reads its partition, not the whole table sorted.

GIVEN the local stack on moto (stepflow.local.moto_patches installed), in this
process or in its own (``moto_process``), WHEN boto3 pages through a Query of a
table's partition or of a sparse index, forwards and backwards, THEN the pages
are exactly DynamoDB's (key order, ``LastEvaluatedKey`` paging, items without
the index's key left out), and a partition's Query no longer sorts every item
of the table (moto sorted them all for each Query: O(n log n) in the table's
size, which made the outbox repair pass stall the stack for seconds).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.local import LocalStack

TABLE = "queries"
OTHERS = 300


@pytest.fixture(scope="module", params=[False, True], ids=["in-process", "moto-process"])
def stack(request: pytest.FixtureRequest) -> Iterator[LocalStack]:
    with LocalStack(
        port=0, handlers={}, pollers=0, runners=0, moto_process=request.param
    ) as running:
        yield running


@pytest.fixture
def client(stack: LocalStack) -> Any:
    dynamodb = stack.client("dynamodb")
    with contextlib.suppress(dynamodb.exceptions.ResourceNotFoundException):
        dynamodb.delete_table(TableName=TABLE)
    strings = ("pk", "sk", "gpk", "gsk")
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in strings],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "sparse",
                "KeySchema": [
                    {"AttributeName": "gpk", "KeyType": "HASH"},
                    {"AttributeName": "gsk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    items = [_item(f"other{i:03}", "0") for i in range(OTHERS)]
    items += [_item("B", sk, index=sk in ("2", "3")) for sk in ("3", "1", "2")]
    items += [_item("C", "1", index=True)]
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        dynamodb.batch_write_item(RequestItems={TABLE: batch})
    return dynamodb


def _item(pk: str, sk: str, *, index: bool = False) -> dict[str, Any]:
    item = {"pk": {"S": pk}, "sk": {"S": sk}}
    if index:  # the sparse index holds B#2, B#3 and C#1, ordered by gsk
        item |= {"gpk": {"S": "running"}, "gsk": {"S": {"B2": "b", "B3": "a"}.get(pk + sk, "c")}}
    return item


def _pages(client: Any, **query: Any) -> list[list[str]]:
    pages, start = [], None
    while True:
        page = client.query(TableName=TABLE, Limit=2, **query, **start or {})
        pages.append([item["pk"]["S"] + item["sk"]["S"] for item in page["Items"]])
        if "LastEvaluatedKey" not in page:
            return pages
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


def test_pages_of_a_partition_and_of_a_sparse_index(client: Any) -> None:
    partition = {
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": "B"}},
    }
    assert _pages(client, **partition) == [["B1", "B2"], ["B3"]]
    assert _pages(client, **partition, ScanIndexForward=False) == [["B3", "B2"], ["B1"]]
    after = {
        "KeyConditionExpression": "pk = :pk AND sk > :sk",
        "ExpressionAttributeValues": {":pk": {"S": "B"}, ":sk": {"S": "1"}},
    }
    assert _pages(client, **after) == [["B2", "B3"]]
    missing = {
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": "nobody"}},
    }
    assert _pages(client, **missing) == [[]]
    index = {
        "IndexName": "sparse",
        "KeyConditionExpression": "gpk = :g",
        "ExpressionAttributeValues": {":g": {"S": "running"}},
    }
    assert _pages(client, **index) == [["B3", "B2"], ["C1"]]
    assert _pages(client, **index, ScanIndexForward=False) == [["C1", "B2"], ["B3"]]


def test_a_partition_query_sorts_no_other_item(
    stack: LocalStack, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if stack.moto_process:
        pytest.skip("counts moto's comparisons in this process")
    dynamo_type = importlib.import_module("moto.dynamodb.models.dynamo_type").DynamoType
    less = dynamo_type.__lt__
    comparisons = [0]

    def counted(self: Any, other: Any) -> bool:
        comparisons[0] += 1
        return bool(less(self, other))

    monkeypatch.setattr(dynamo_type, "__lt__", counted)
    page = client.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "B"}},
    )
    assert [item["sk"]["S"] for item in page["Items"]] == ["1", "2", "3"]
    # Sorting the partition's three items; moto sorted all 304 of the table (thousands).
    assert comparisons[0] <= 10, comparisons[0]
