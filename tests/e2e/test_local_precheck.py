"""On the shipping path: boto3 against ``stepflow local``, parameters refused before scheduling.

The stack as shipped (its SQS pollers, DynamoDB log, API and the integration
registry over its moto): a ``putItem`` with ``{"N": 5}`` and an
``apigateway:invoke`` with a string header fail with AWS's history
(ExecutionStarted, TaskStateEntered, ExecutionFailed) and cause; the process
makes no DynamoDB ``PutItem`` call on the table and the HTTP target receives
no request. The same workflows with good parameters call each exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.local import LocalStack

from tests.e2e.waiting import wait_for
from tests.precheck_cases import (
    BEFORE_SCHEDULING,
    SCHEDULED,
    TABLE,
    ApiCalls,
    bad_headers_cause,
    bad_item_cause,
    counting_api_calls,
    invoke,
    put_item,
)
from tests.unit.http_target import HttpTarget, http_target

pytest.importorskip("moto")
ROLE = "arn:aws:iam::123456789012:role/OrdersRole"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0) as running:
        running.client("dynamodb").create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield running


@pytest.fixture(scope="module")
def target() -> Iterator[HttpTarget]:
    with http_target() as running:
        yield running


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiCalls]:
    with counting_api_calls(monkeypatch) as counted:
        yield counted


def machine(stack: LocalStack, name: str, definition: dict[str, Any]) -> str:
    sfn = stack.stepfunctions()
    created = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)
    return str(created["stateMachineArn"])


def run(stack: LocalStack, arn: str, payload: Any) -> dict[str, Any]:
    sfn = stack.stepfunctions()
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(payload))
    described = dict(wait_for(sfn, execution["executionArn"]))
    history = sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
    described["types"] = [e["type"] for e in history]
    return described


def test_put_item_with_a_json_number_is_refused_before_scheduling(
    stack: LocalStack, calls: ApiCalls
) -> None:
    arn = machine(stack, "precheck-put", put_item())
    bad = run(stack, arn, {"id": "o-1", "total": {"N": 5}})
    assert bad["types"] == BEFORE_SCHEDULING
    assert (bad["status"], bad["error"], bad["cause"]) == (
        "FAILED",
        "States.Runtime",
        bad_item_cause("o-1"),
    )
    assert calls.count("PutItem") == 0
    good = run(stack, arn, {"id": "o-2", "total": {"N": "5"}})
    assert good["types"] == SCHEDULED
    assert calls.count("PutItem") == 1
    items = stack.client("dynamodb").scan(TableName=TABLE)["Items"]
    assert items == [{"id": {"S": "o-2"}, "total": {"N": "5"}}]


def test_a_string_header_is_refused_before_scheduling(
    stack: LocalStack, target: HttpTarget
) -> None:
    arn = machine(stack, "precheck-headers", invoke())
    before = target.count("id_func")
    bad = run(stack, arn, {"ApiEndpoint": target.url, "Headers": {"custom_header": "single"}})
    assert bad["types"] == BEFORE_SCHEDULING
    assert (bad["status"], bad["error"], bad["cause"]) == (
        "FAILED",
        "States.Runtime",
        bad_headers_cause(target.url),
    )
    assert target.count("id_func") == before
    good = run(stack, arn, {"ApiEndpoint": target.url, "Headers": {"custom_header": ["single"]}})
    assert good["types"] == SCHEDULED
    assert target.count("id_func") == before + 1
