"""In memory (``WorkflowEnvironment(aws=True)`` on moto): parameters refused before scheduling.

The same driver users test with: a ``putItem`` with ``{"N": 5}`` and an
``apigateway:invoke`` with a string header fail with AWS's history and cause,
and neither DynamoDB nor the API receives a request; the same workflows with
good parameters call each exactly once. A handler bound to the resource
replaces the integration and its checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from stepflow.testing import WorkflowEnvironment

from tests.moto_env import REGION, offline_aws
from tests.precheck_cases import (
    BEFORE_SCHEDULING,
    SCHEDULED,
    TABLE,
    ApiCalls,
    R,
    bad_headers_cause,
    bad_item_cause,
    counting_api_calls,
    invoke,
    put_item,
)
from tests.unit.http_target import HttpTarget, http_target


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiCalls]:
    with offline_aws(monkeypatch):
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        with counting_api_calls(monkeypatch) as counted:
            yield counted


@pytest.fixture(scope="module")
def target() -> Iterator[HttpTarget]:
    with http_target() as running:
        yield running


def finish(env: WorkflowEnvironment, definition: dict[str, Any] | str, payload: Any) -> Any:
    arn = env.start(definition, payload)
    env.run(arn)
    return env.result(arn)


def items() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = boto3.client("dynamodb", region_name=REGION).scan(
        TableName=TABLE
    )["Items"]
    return found


def test_put_item_with_a_json_number_fails_before_scheduling_and_writes_nothing(
    calls: ApiCalls,
) -> None:
    env = WorkflowEnvironment(aws=True)
    result = finish(env, put_item(), {"id": "o-1", "total": {"N": 5}})
    assert [e["type"] for e in result.history] == BEFORE_SCHEDULING
    assert (result.status, result.error, result.cause) == (
        "FAILED",
        "States.Runtime",
        bad_item_cause("o-1"),
    )
    assert calls.count("PutItem") == 0
    assert items() == []


def test_the_same_put_item_with_a_string_number_writes_once(calls: ApiCalls) -> None:
    env = WorkflowEnvironment(aws=True)
    result = finish(env, put_item(), {"id": "o-2", "total": {"N": "5"}})
    assert [e["type"] for e in result.history] == SCHEDULED
    assert calls.count("PutItem") == 1
    assert items() == [{"id": {"S": "o-2"}, "total": {"N": "5"}}]


def test_a_bound_handler_takes_any_parameters(calls: ApiCalls) -> None:
    taken: list[Any] = []
    env = WorkflowEnvironment(handlers={R + "dynamodb:putItem": taken.append}, aws=True)
    result = finish(env, put_item(), {"id": "o-3", "total": {"N": 5}})
    assert result.status == "SUCCEEDED"
    assert taken == [{"TableName": TABLE, "Item": {"id": {"S": "o-3"}, "total": {"N": 5}}}]
    assert calls.count("PutItem") == 0


def test_a_string_header_fails_before_scheduling_and_the_api_is_not_called(
    target: HttpTarget,
) -> None:
    before = target.count("id_func")
    env = WorkflowEnvironment(aws=True)
    payload = {"ApiEndpoint": target.url, "Headers": {"custom_header": "single"}}
    machine = env.register(invoke())
    result = finish(env, machine, payload)
    assert [e["type"] for e in result.history] == BEFORE_SCHEDULING
    assert (result.error, result.cause) == ("States.Runtime", bad_headers_cause(target.url))
    assert target.count("id_func") == before
    good = {"ApiEndpoint": target.url, "Headers": {"custom_header": ["single"]}}
    assert finish(env, machine, good).status == "SUCCEEDED"
    assert target.count("id_func") == before + 1
