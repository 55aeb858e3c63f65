"""The workflows and counters the pre-scheduling checks are proven with (in memory and local).

A DynamoDB ``putItem`` whose number is a JSON number (``{"N": 5}``) and an
``apigateway:invoke`` whose header is a string, not a list: AWS fails both
states with ``States.Runtime`` before scheduling the task, and never calls
DynamoDB or the API.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from botocore.client import BaseClient

R = "arn:aws:states:::"
TABLE = "precheck-orders"
BEFORE_SCHEDULING = ["ExecutionStarted", "TaskStateEntered", "ExecutionFailed"]
SCHEDULED = [
    "ExecutionStarted",
    "TaskStateEntered",
    "TaskScheduled",
    "TaskStarted",
    "TaskSucceeded",
    "TaskStateExited",
    "ExecutionSucceeded",
]


def put_item() -> dict[str, Any]:
    """``putItem`` of ``{"id": {"S": $.id}, "total": $.total}`` (the total as given)."""
    return {
        "StartAt": "Put",
        "States": {
            "Put": {
                "Type": "Task",
                "Resource": R + "dynamodb:putItem",
                "Parameters": {
                    "TableName": TABLE,
                    "Item": {"id": {"S.$": "$.id"}, "total.$": "$.total"},
                },
                "End": True,
            }
        },
    }


def invoke() -> dict[str, Any]:
    """``apigateway:invoke`` POST to ``$.ApiEndpoint``/prod/id_func with ``$.Headers``."""
    return {
        "StartAt": "ApiGatewayInvoke",
        "States": {
            "ApiGatewayInvoke": {
                "Type": "Task",
                "Resource": R + "apigateway:invoke",
                "Parameters": {
                    "ApiEndpoint.$": "$.ApiEndpoint",
                    "Method": "POST",
                    "Stage": "prod",
                    "Path": "id_func",
                    "RequestBody": {"message": "HelloWorld!"},
                    "Headers.$": "$.Headers",
                },
                "End": True,
            }
        },
    }


def cause(state: str, parameters: dict[str, Any], problem: str) -> str:
    """AWS's cause for parameters refused before scheduling (the first state: event #2)."""
    text = json.dumps(parameters, separators=(",", ":"), ensure_ascii=False)
    return (
        f"An error occurred while executing the state '{state}' (entered at the event id #2). "
        f"The Parameters '{text}' could not be used to start the Task: [{problem}]"
    )


def bad_item_cause(order_id: str) -> str:
    """The cause of :func:`put_item` with ``total`` ``{"N": 5}``."""
    item = {"id": {"S": order_id}, "total": {"N": 5}}
    return cause(
        "Put",
        {"TableName": TABLE, "Item": item},
        "The value for the field 'N' must be a STRING",
    )


def bad_headers_cause(endpoint: str) -> str:
    """The cause of :func:`invoke` with ``Headers`` ``{"custom_header": "single"}``."""
    parameters = {
        "ApiEndpoint": endpoint,
        "Method": "POST",
        "Stage": "prod",
        "Path": "id_func",
        "RequestBody": {"message": "HelloWorld!"},
        "Headers": {"custom_header": "single"},
    }
    return cause(
        "ApiGatewayInvoke", parameters, "The value of the field 'Headers' has an invalid format"
    )


class ApiCalls:
    """AWS API calls made by this process's boto3 clients, by operation and table."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def count(self, operation: str, table: str = TABLE) -> int:
        """Calls of ``operation`` on ``table`` so far."""
        with self.lock:
            return sum(1 for op, t in self.calls if op == operation and t == table)


@contextmanager
def counting_api_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiCalls]:
    """Every boto3 call of the process (the integrations' too) counted while inside."""
    seen = ApiCalls()
    original = BaseClient._make_api_call

    def counted(client: Any, operation: str, params: dict[str, Any]) -> Any:
        with seen.lock:
            seen.calls.append((operation, params.get("TableName")))
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counted)
    yield seen
