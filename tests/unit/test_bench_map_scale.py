"""bench/map_scale.py at tiny N: the meter bills as DynamoDB does, both logs agree, no rot."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from unittest import mock

import boto3
import pytest
from moto import mock_aws
from stepflow.local.moto_patches import item_snapshots

from bench import map_scale
from bench.map_meter import KeyMeter

FAKE = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture(autouse=True)
def _credentials() -> Iterator[None]:
    with mock.patch.dict(os.environ, {**FAKE, "AWS_DEFAULT_REGION": "us-east-1"}):
        yield


def item(sk: str, size: int) -> dict[str, Any]:
    # pk (2 + 3) + sk (2 + len) + name "d" (1) + the value
    return {"pk": {"S": "EX#"}, "sk": {"S": sk}, "d": {"S": "x" * (size - 8 - len(sk))}}


def test_write_units_are_billed_per_kb_twice_in_a_transaction_and_on_the_larger_size() -> None:
    meter = KeyMeter(clock=lambda: 0.0)
    meter.charge("PutItem", {"Item": item("A", 1500)})
    assert meter.wru == 2
    meter.charge("TransactWriteItems", {"TransactItems": [{"Put": {"Item": item("B", 1500)}}]})
    assert meter.wru == 2 + 4
    shrink = {
        "Key": {"pk": {"S": "EX#"}, "sk": {"S": "A"}},
        "UpdateExpression": "SET #d = :d",
        "ExpressionAttributeNames": {"#d": "d"},
        "ExpressionAttributeValues": {":d": {"S": "small"}},
    }
    meter.charge("UpdateItem", shrink)  # billed on the 1.5 KB before, not the small after
    assert meter.wru == 2 + 4 + 2
    meter.charge("UpdateItem", shrink)  # now small before and after: one unit
    assert meter.wru == 2 + 4 + 2 + 1
    check = {"ConditionCheck": {"Key": {"pk": {"S": "EX#"}, "sk": {"S": "A"}}}}
    meter.charge("TransactWriteItems", {"TransactItems": [check]})
    assert meter.wru == 2 + 4 + 2 + 1 + 2
    meter.fold()
    assert meter.per_key[("EX#", "A")] == 3  # a condition check bills but writes nothing
    assert meter.peak_rate == 3 and meter.peak_rate_key == ("EX#", "A")


def test_the_indexes_bill_a_listed_heads_every_write_and_a_running_heads_entry_and_exit() -> None:
    meter = KeyMeter(clock=lambda: 0.0)
    head = item("H", 1500)
    head["gsi1pk"], head["run_pk"] = {"S": "EXL#sm"}, {"S": "RUN#1"}
    meter.charge("TransactWriteItems", {"TransactItems": [{"Put": {"Item": head}}]})
    # table 2 x 2 KB in a transaction; gsi1 (ALL) the item's 2 KB once; gsi2 entered: 1
    assert meter.wru == 4 + 2 + 1
    assert meter.index_wru == {"gsi1": 2, "gsi2": 1}
    ended = {
        "Key": {"pk": {"S": "EX#"}, "sk": {"S": "H"}},
        "UpdateExpression": "SET #s = :s REMOVE run_pk",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":s": {"S": "SUCCEEDED"}},
    }
    meter.charge("UpdateItem", ended)  # leaves gsi2 (1), gsi1 rewritten (2 KB: 2)
    assert meter.index_wru == {"gsi1": 4, "gsi2": 2}
    plain = item("P", 100)
    meter.charge("PutItem", {"Item": plain})  # in no index
    assert meter.index_wru == {"gsi1": 4, "gsi2": 2}
    meter.fold()
    assert meter.by_kind("nobody")["index gsi1"] == 4


def test_the_peak_rate_counts_writes_on_one_key_within_one_second() -> None:
    now = [0.0]
    meter = KeyMeter(clock=lambda: now[0])
    for at in (0.1, 0.2, 0.9, 1.1, 1.2, 2.5):
        now[0] = at
        meter.charge("PutItem", {"Item": item("A", 100)})
    meter.fold()
    assert meter.peak_rate == 3
    assert meter.per_key[("EX#", "A")] == 6


def test_a_cancelled_transaction_is_rolled_back_with_item_snapshots() -> None:
    with mock_aws(), item_snapshots():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
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
        client.put_item(TableName="t", Item=item("A", 100))
        before = client.scan(TableName="t")["Items"]
        with pytest.raises(client.exceptions.TransactionCanceledException):
            client.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": "t", "Item": item("B", 100)}},
                    {
                        "Put": {
                            "TableName": "t",
                            "Item": item("A", 200),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        assert client.scan(TableName="t")["Items"] == before


def test_the_memory_and_moto_logs_are_metered_alike() -> None:
    memory = map_scale.run(45, log="memory", trace=True)
    moto = map_scale.run(45, log="moto", trace=False)
    assert memory.status == moto.status == "SUCCEEDED"
    assert memory.transitions == moto.transitions == 91
    assert memory.unmetered == {}
    # Same records, same items: the write units agree (the moto log makes a few more
    # conditional writes of the parent head, e.g. a clear_outbox racing a commit).
    assert memory.wru > 45 and abs(memory.wru - moto.wru) <= 0.1 * moto.wru
    assert sum(memory.by_kind.values()) == memory.wru
    assert memory.max_writes_one_key >= 5  # the parent HEAD: once per batch of children
    assert memory.peak_batch_bytes > 0 and memory.peak_rate > 0
    assert memory.per_million > 0 and memory.dollars["dynamodb_writes"] > 0


def test_a_210_kb_input_overflows_the_parent_head_without_a_payload_store() -> None:
    figures = map_scale.run(20, log="memory", trace=False, input_kb=210)
    # The head holds the input once (the state's copies are left out), so the start
    # fits; a later commit overflows and the execution fails as unstorable.
    assert figures.status.startswith("FAILED States.Runtime") and "400 KB" in figures.status


def test_the_script_prints_figures_side_by_side_and_refuses_unsupported_modes_clearly(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = map_scale.main(["--items", "3,6", "--map", "inline,standard,express"])
    out = capsys.readouterr().out
    assert "Traceback" not in out
    assert "write units per item" in out and "max writes/s on one key" in out
    distributed = out.split("== Map standard", 1)[1]
    if "NOT SUPPORTED" in distributed:
        assert code == 2
    else:
        assert code == 0 and distributed.count("$ per million transitions") == 2
