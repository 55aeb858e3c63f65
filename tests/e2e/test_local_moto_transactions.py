"""The local stack's moto: a transaction copies the items it touches, all or nothing.

GIVEN the local stack on moto (stepflow.local.moto_patches installed by its
start), in this process or in a child process of its own (``moto_process``,
what ``stepflow local`` runs), WHEN clients send TransactWriteItems through
boto3, THEN no table is copied (moto's own rollback deep-copied the whole table
once per item, which made a map run of N durable children O(N^2)), and the
outcome is moto's (and DynamoDB's): a failed condition on any item cancels
every item, with one reason per item, an item named twice is refused, and
conditional transactions on one key from concurrent clients serialise (no
update is lost).
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from stepflow.local import LocalStack
from stepflow.local.stack import CREDENTIALS, REGION

TABLE = "transactions"


@pytest.fixture(scope="module", params=[False, True], ids=["in-process", "moto-process"])
def stack(request: pytest.FixtureRequest) -> Iterator[LocalStack]:
    with LocalStack(
        port=0, handlers={}, pollers=0, runners=0, moto_process=request.param
    ) as running:
        yield running


@pytest.fixture
def client(stack: LocalStack) -> Any:
    dynamodb = boto3.client(
        "dynamodb", endpoint_url=stack.aws_endpoint, region_name=REGION, **CREDENTIALS
    )
    with contextlib.suppress(dynamodb.exceptions.ResourceNotFoundException):
        dynamodb.delete_table(TableName=TABLE)
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for sk in ("a", "c", "d"):
        dynamodb.put_item(TableName=TABLE, Item=_item(sk, "before"))
    return dynamodb


def _item(sk: str, value: str) -> dict[str, Any]:
    return {"pk": {"S": "EX#1"}, "sk": {"S": sk}, "v": {"S": value}}


def _key(sk: str) -> dict[str, Any]:
    return {"pk": {"S": "EX#1"}, "sk": {"S": sk}}


def _everything(client: Any) -> list[dict[str, Any]]:
    return sorted(client.scan(TableName=TABLE)["Items"], key=lambda item: item["sk"]["S"])


class _CopySpy:
    """Wraps what moto's DynamoDB backend calls ``copy``: counts the tables really copied."""

    def __init__(self, inner: Any, table_type: type) -> None:
        self.inner, self.table_type = inner, table_type
        self.tables_copied = 0

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        result = self.inner.deepcopy(value, memo)
        if isinstance(value, self.table_type) and result is not value:
            self.tables_copied += 1
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_transaction_copies_no_table(
    stack: LocalStack, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if stack.moto_process:
        pytest.skip("spies on moto's module in this process")
    models = importlib.import_module("moto.dynamodb.models")
    table_type = importlib.import_module("moto.dynamodb.models.table").Table
    spy = _CopySpy(models.copy, table_type)
    monkeypatch.setattr(models, "copy", spy)
    client.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": _item("b", "new")}},
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": _key("a"),
                    "UpdateExpression": "SET v = :v",
                    "ExpressionAttributeValues": {":v": {"S": "after"}},
                }
            },
        ]
    )
    assert spy.tables_copied == 0
    assert [item["v"]["S"] for item in _everything(client)] == ["after", "new", "before", "before"]


def test_a_failed_third_condition_leaves_every_item_unchanged(client: Any) -> None:
    before = _everything(client)
    with pytest.raises(ClientError) as raised:
        client.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": _key("a"),
                        "UpdateExpression": "SET v = :v",
                        "ExpressionAttributeValues": {":v": {"S": "after"}},
                    }
                },
                {"Put": {"TableName": TABLE, "Item": _item("b", "new")}},
                {
                    "Put": {
                        "TableName": TABLE,
                        "Item": _item("c", "after"),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {"Delete": {"TableName": TABLE, "Key": _key("d")}},
            ]
        )
    error = raised.value.response["Error"]
    assert error["Code"] == "TransactionCanceledException"
    reasons = [r["Code"] for r in raised.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "ConditionalCheckFailed", "None"]
    assert _everything(client) == before
    assert client.get_item(TableName=TABLE, Key=_key("b")).get("Item") is None


def test_an_item_touched_twice_is_refused_and_nothing_is_written(client: Any) -> None:
    before = _everything(client)
    with pytest.raises(ClientError) as raised:
        client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": _item("b", "new")}},
                {"Delete": {"TableName": TABLE, "Key": _key("a")}},
                {"Put": {"TableName": TABLE, "Item": _item("a", "again")}},
            ]
        )
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "multiple operations" in raised.value.response["Error"]["Message"]
    assert _everything(client) == before


def test_after_a_cancelled_transaction_the_next_one_commits(client: Any) -> None:
    conflict = {
        "Put": {
            "TableName": TABLE,
            "Item": _item("a", "x"),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }
    with pytest.raises(ClientError):
        client.transact_write_items(
            TransactItems=[{"Put": {"TableName": TABLE, "Item": _item("b", "new")}}, conflict]
        )
    client.transact_write_items(
        TransactItems=[{"Put": {"TableName": TABLE, "Item": _item("b", "new")}}]
    )
    assert [item["sk"]["S"] for item in _everything(client)] == ["a", "b", "c", "d"]


CLIENTS = 4
INCREMENTS = 10


def _increment(client: Any, key: dict[str, Any]) -> int:
    """Add one to ``n`` by a conditional transaction (read, then write iff unchanged)."""
    conflicts = 0
    while True:
        seen = client.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"]["n"]["N"]
        try:
            client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": TABLE,
                            "Key": key,
                            "UpdateExpression": "SET n = :next",
                            "ConditionExpression": "n = :seen",
                            "ExpressionAttributeValues": {
                                ":seen": {"N": seen},
                                ":next": {"N": str(int(seen) + 1)},
                            },
                        }
                    },
                    {"Put": {"TableName": TABLE, "Item": _item(f"log-{seen}", "written")}},
                ]
            )
            return conflicts
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "TransactionCanceledException"
            reasons = [r["Code"] for r in exc.response["CancellationReasons"]]
            assert reasons == ["ConditionalCheckFailed", "None"]
            conflicts += 1


def test_concurrent_transactions_on_one_key_serialise(
    stack: LocalStack, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not stack.moto_process:  # widen the window between moto's check and its write
        backend = importlib.import_module("moto.dynamodb.models").DynamoDBBackend
        original = backend.get_item

        def slow_get_item(self: Any, *args: Any, **kwargs: Any) -> Any:
            item = original(self, *args, **kwargs)
            time.sleep(0.002)
            return item

        monkeypatch.setattr(backend, "get_item", slow_get_item)
    key = _key("counter")
    client.put_item(TableName=TABLE, Item={**key, "n": {"N": "0"}})
    clients = [stack.client("dynamodb") for _ in range(CLIENTS)]
    with ThreadPoolExecutor(CLIENTS) as pool:
        conflicts = list(
            pool.map(
                lambda c: sum(_increment(c, key) for _ in range(INCREMENTS)),
                clients,
            )
        )
    final = client.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"]["n"]["N"]
    assert int(final) == CLIENTS * INCREMENTS, conflicts
    logs = [i for i in _everything(client) if i["sk"]["S"].startswith("log-")]
    assert sorted(int(i["sk"]["S"][4:]) for i in logs) == list(range(CLIENTS * INCREMENTS))
