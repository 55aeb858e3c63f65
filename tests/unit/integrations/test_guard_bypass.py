"""Hostile spellings that reach StepFlow's own table past the own-resource guard.

The aws-sdk integration matches member names regardless of case (``tableName``
is ``TableName``) and DynamoDB has writes that name the table elsewhere
(``RequestItems`` keys, PartiQL). The guard (runtime/targets.py) looks for own
names in every string and key of the parameters. Each test runs the guard over
the real invoker on moto and counts the items written to the own table: it
must stay empty.
"""

from __future__ import annotations

from typing import Any

import pytest
from stepflow.runtime.targets import OwnResources, OwnTargetGuard

from tests.unit.integrations.helpers import body, fixed, invoker

TABLE = "StepFlow-Log"
OWN = OwnResources.of(tables=[TABLE])
ITEM = {"pk": {"S": "forged"}}


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
