"""Hostile spellings that reach StepFlow's own table past the own-resource guard.

The guard (runtime/targets.py, the harden engineer's this round) reads the one
field ``TableName`` as it is spelled, while the aws-sdk integration matches
member names regardless of case (``tableName`` is ``TableName``) and DynamoDB
has writes that name the table elsewhere (``RequestItems`` keys, PartiQL).
Each test runs the guard over the real invoker on moto and counts the items
written to the own table: it must stay empty. Expected to fail (xfail, strict)
until the guard covers them; remove the marks then.
"""

from __future__ import annotations

from typing import Any

import pytest
from stepflow.runtime.targets import OwnResources, OwnTargetGuard

from tests.unit.integrations.helpers import body, fixed, invoker

TABLE = "StepFlow-Log"
OWN = OwnResources.of(tables=[TABLE])
ITEM = {"pk": {"S": "forged"}}
BYPASS = pytest.mark.xfail(strict=True, reason="own-resource guard bypass (reported, harden's)")


def _table(aws: dict[str, Any]) -> None:
    aws["dynamodb"].create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _written(aws: dict[str, Any]) -> int:
    return int(aws["dynamodb"].scan(TableName=TABLE)["Count"])


def test_the_guard_refuses_the_plain_spelling(aws: Any) -> None:
    _table(aws)
    guard = OwnTargetGuard(invoker(fixed(aws)), OWN)
    resource = "arn:aws:states:::aws-sdk:dynamodb:putItem"
    outcome = guard(body(resource, {"TableName": TABLE, "Item": ITEM}))
    assert outcome.error == "States.Runtime"
    assert _written(aws) == 0


@BYPASS
@pytest.mark.parametrize(
    ("action", "parameters"),
    [
        ("putItem", {"tableName": TABLE, "Item": ITEM}),
        ("putItem", {"TABLENAME": TABLE, "Item": ITEM}),
        ("batchWriteItem", {"RequestItems": {TABLE: [{"PutRequest": {"Item": ITEM}}]}}),
        ("transactWriteItems", {"TransactItems": [{"Put": {"TableName": TABLE, "Item": ITEM}}]}),
        ("executeStatement", {"Statement": f"INSERT INTO \"{TABLE}\" VALUE {{'pk': 'forged'}}"}),
    ],
)
def test_no_spelling_writes_to_the_own_table(
    aws: Any, action: str, parameters: dict[str, Any]
) -> None:
    _table(aws)
    guard = OwnTargetGuard(invoker(fixed(aws)), OWN)
    outcome = guard(body(f"arn:aws:states:::aws-sdk:dynamodb:{action}", parameters))
    assert _written(aws) == 0, outcome
