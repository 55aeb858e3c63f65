"""``dynamodb:getItem|putItem|updateItem|deleteItem`` against moto in process."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from stepflow.integrations import default_registry
from stepflow.integrations.dynamodb import DynamoDBItems
from stepflow.testing import WorkflowEnvironment

from tests.unit.integrations.helpers import (
    body,
    definition,
    fixed,
    invoker,
)

R = "arn:aws:states:::dynamodb:"
TABLE = "orders"
CAUSE_TAIL = (
    r" \(Service: AmazonDynamoDBv2; Status Code: 400; Error Code: {code}; "
    r"Request ID: \S+; Proxy: null\)"
)


@pytest.fixture
def table(aws: dict[str, Any]) -> dict[str, Any]:
    aws["dynamodb"].create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return aws


def _items(aws: dict[str, Any]) -> list[dict[str, Any]]:
    return list(aws["dynamodb"].scan(TableName=TABLE)["Items"])


def _cause(code: str, message: str) -> str:
    return re.escape(message) + CAUSE_TAIL.format(code=code)


def test_put_item_writes_exactly_one_item_and_returns_the_sdk_metadata(table: Any) -> None:
    item = {"id": {"S": "id1"}, "data": {"S": "HelloWorld"}}
    outcome = invoker(fixed(table))(body(R + "putItem", {"TableName": TABLE, "Item": item}))
    assert outcome.ok, outcome
    assert set(outcome.output) == {"SdkHttpMetadata", "SdkResponseMetadata"}
    assert outcome.output["SdkHttpMetadata"]["HttpStatusCode"] == 200
    assert _items(table) == [item]


def test_get_update_delete_round_trip_with_binary_and_numbers(table: Any) -> None:
    run = invoker(fixed(table))
    blob = base64.b64encode(b"\x00\xffdata").decode()
    item = {"id": {"S": "a"}, "n": {"N": "1"}, "b": {"B": blob}, "m": {"M": {"x": {"B": blob}}}}
    assert run(body(R + "putItem", {"TableName": TABLE, "Item": item})).ok
    stored = _items(table)[0]
    assert stored["b"]["B"] == b"\x00\xffdata"  # base64 text in JSON, bytes in DynamoDB
    got = run(body(R + "getItem", {"TableName": TABLE, "Key": {"id": {"S": "a"}}}))
    assert got.ok and got.output["Item"] == item
    json.dumps(got.output)  # JSON all the way down
    update = {
        "TableName": TABLE,
        "Key": {"id": {"S": "a"}},
        "UpdateExpression": "SET n = n + :one",
        "ExpressionAttributeValues": {":one": {"N": "1"}},
        "ReturnValues": "UPDATED_NEW",
    }
    updated = run(body(R + "updateItem", update))
    assert updated.ok and updated.output["Attributes"] == {"n": {"N": "2"}}
    deleted = run(body(R + "deleteItem", {"TableName": TABLE, "Key": {"id": {"S": "a"}}}))
    assert deleted.ok and _items(table) == []


def test_a_table_that_does_not_exist_fails_as_on_aws(table: Any) -> None:
    item = {"id": {"S": "id1"}}
    outcome = invoker(fixed(table))(body(R + "putItem", {"TableName": "nope", "Item": item}))
    assert outcome.error == "DynamoDB.ResourceNotFoundException"
    assert re.fullmatch(
        _cause("ResourceNotFoundException", "Requested resource not found"), outcome.cause or ""
    )


def test_an_invalid_table_name_is_dynamodbs_validation_error(table: Any) -> None:
    item = {"id": {"S": "id1"}}
    outcome = invoker(fixed(table))(body(R + "putItem", {"TableName": "/orders", "Item": item}))
    assert outcome.error == "DynamoDB.AmazonDynamoDBException"  # dev case: invalid table name
    message = (
        "1 validation error detected: Value '/orders' at 'tableName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
    )
    assert re.fullmatch(_cause("ValidationException", message), outcome.cause or "")
    assert _items(table) == []


def test_a_null_item_is_dynamodbs_validation_error(table: Any) -> None:
    parameters = {"TableName": TABLE, "Item": None}
    outcome = invoker(fixed(table))(body(R + "putItem", parameters))
    assert outcome.error == "DynamoDB.AmazonDynamoDBException"  # dev case test_invalid_param
    message = (
        "1 validation error detected: Value null at 'item' failed to satisfy constraint: "
        "Member must not be null"
    )
    assert re.fullmatch(_cause("ValidationException", message), outcome.cause or "")
    missing = invoker(fixed(table))(body(R + "getItem", {"TableName": TABLE}))
    assert "Value null at 'key'" in (missing.cause or "")
    assert _items(table) == []


def test_a_failed_condition_is_named_and_leaves_the_item(table: Any) -> None:
    run = invoker(fixed(table))
    item = {"id": {"S": "a"}, "v": {"N": "1"}}
    assert run(body(R + "putItem", {"TableName": TABLE, "Item": item})).ok
    again = {
        "TableName": TABLE,
        "Item": {"id": {"S": "a"}, "v": {"N": "2"}},
        "ConditionExpression": "attribute_not_exists(id)",
    }
    outcome = run(body(R + "putItem", again))
    assert outcome.error == "DynamoDB.ConditionalCheckFailedException"
    assert "Error Code: ConditionalCheckFailedException;" in (outcome.cause or "")
    assert _items(table) == [item]


def test_wrong_types_fail_before_any_write(table: Any) -> None:
    run = invoker(fixed(table))
    number = run(
        body(R + "putItem", {"TableName": TABLE, "Item": {"id": {"S": "a"}, "n": {"N": 5}}})
    )
    assert number.error == "States.Runtime"
    assert "[The value for the field 'N' must be a STRING]" in (number.cause or "")
    assert run(body(R + "putItem", {"TableName": TABLE, "Item": "x"})).error == "States.Runtime"
    assert run(body(R + "putItem", ["not", "an", "object"])).error == "States.Runtime"
    bad_b = {"TableName": TABLE, "Item": {"id": {"S": "a"}, "b": {"B": "%%%"}}}
    assert run(body(R + "putItem", bad_b)).error == "States.Runtime"
    assert _items(table) == []


def test_an_item_over_400_kb_is_refused_by_dynamodb(table: Any) -> None:
    item = {"id": {"S": "a"}, "blob": {"S": "x" * 410_000}}
    outcome = invoker(fixed(table))(body(R + "putItem", {"TableName": TABLE, "Item": item}))
    assert outcome.error == "DynamoDB.AmazonDynamoDBException"
    assert "Error Code: ValidationException;" in (outcome.cause or "")
    assert _items(table) == []


def test_query_scan_and_other_patterns_are_not_optimized_actions() -> None:
    registry = default_registry()
    for action in ("getItem", "putItem", "updateItem", "deleteItem"):
        assert registry.problem(R + action) is None
    assert registry.problem(R + "query") is not None  # invalid, as on AWS
    assert registry.problem(R + "scan") is not None
    assert registry.problem(R + "putItem.waitForTaskToken") is not None
    assert registry.problem(R + "putItem.sync") is not None
    assert DynamoDBItems().check("query", "request-response") is not None


def test_an_unsupported_action_at_runtime_names_the_resource(table: Any) -> None:
    outcome = invoker(fixed(table))(body(R + "query", {"TableName": TABLE}))
    assert outcome.error == "States.Runtime"
    assert R + "query" in (outcome.cause or "")


def test_in_memory_put_then_get_writes_one_item_and_reads_it_back(table: Any) -> None:
    env = WorkflowEnvironment(invoker=invoker(fixed(table)))
    workflow = {
        "StartAt": "Put",
        "States": {
            "Put": {
                "Type": "Task",
                "Resource": R + "putItem",
                "Parameters": {"TableName": TABLE, "Item": {"id": {"S.$": "$.id"}}},
                "ResultPath": None,
                "Next": "Get",
            },
            "Get": {
                "Type": "Task",
                "Resource": R + "getItem",
                "Parameters": {"TableName": TABLE, "Key": {"id": {"S.$": "$.id"}}},
                "OutputPath": "$.Item",
                "End": True,
            },
        },
    }
    arn = env.start(workflow, {"id": "o-9"})
    env.run(arn)
    result = env.result(arn)
    assert result.status == "SUCCEEDED", result
    assert json.loads(result.output or "null") == {"id": {"S": "o-9"}}
    assert _items(table) == [{"id": {"S": "o-9"}}]
    types = [e["type"] for e in result.history]
    assert types.count("TaskSucceeded") == 2


def test_in_memory_a_missing_table_fails_the_execution(table: Any) -> None:
    env = WorkflowEnvironment(invoker=invoker(fixed(table)))
    parameters = {"TableName": "gone", "Item": {"id": {"S": "1"}}}
    arn = env.start(definition(R + "putItem", parameters), {})
    env.run(arn)
    result = env.result(arn)
    assert (result.status, result.error) == ("FAILED", "DynamoDB.ResourceNotFoundException")
