"""``arn:aws:states:::dynamodb:getItem|putItem|updateItem|deleteItem``: one item, request-response.

The parameters are DynamoDB's request (``TableName``, ``Item`` or ``Key``,
expressions, ``ReturnValues``...), attribute values in DynamoDB's JSON
(``{"S": "..."}``; a ``B`` is base64 text). The output is DynamoDB's response
(``Item``, ``Attributes``, ``ConsumedCapacity``...) with the SDK metadata; an
error is ``DynamoDB.<Exception>`` (``DynamoDB.ResourceNotFoundException``,
``DynamoDB.ConditionalCheckFailedException``), and a request DynamoDB refuses
as invalid is ``DynamoDB.AmazonDynamoDBException`` (error code
``ValidationException``), as on AWS. Other DynamoDB actions (``query``,
``scan``...) are not optimized integrations: they are the SDK integration's
(``arn:aws:states:::aws-sdk:dynamodb:query``).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from stepflow.engine.resources import Pattern
from stepflow.integrations.base import Integration, TaskRequest, unknown_action
from stepflow.integrations.errors import ErrorNames
from stepflow.integrations.optimized import (
    arn_region,
    call_optimized,
    not_an_object,
    unusable,
)
from stepflow.integrations.prechecks import shape_problem, without_nulls
from stepflow.runtime.clients import TaskClients
from stepflow.runtime.outcome import TaskOutcome

DYNAMODB = ErrorNames(
    prefix="DynamoDB",
    cause_service="AmazonDynamoDBv2",
    naming="modeled",
    base_exception="AmazonDynamoDBException",
)
ACTIONS = {
    "getItem": "GetItem",
    "putItem": "PutItem",
    "updateItem": "UpdateItem",
    "deleteItem": "DeleteItem",
}
"""Step Functions' action -> DynamoDB's operation."""

TABLE_NAME = re.compile(r"[a-zA-Z0-9_.-]+")
TABLE_ARN = re.compile(r"arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:\d{12}:table/[a-zA-Z0-9_.-]{3,255}")
_ATTRIBUTE_MAPS = ("Item", "Key", "ExpressionAttributeValues", "ExclusiveStartKey")


class DynamoDBItems:
    """The optimized DynamoDB integration: the four single-item actions."""

    service = "dynamodb"
    patterns: frozenset[Pattern] = frozenset({"request-response"})

    def check(self, action: str, pattern: Pattern) -> str | None:
        """Only getItem/putItem/updateItem/deleteItem, as on AWS."""
        return unknown_action("dynamodb", action, ACTIONS, "dynamodb")

    def parameters_problem(self, action: str, parameters: Any) -> str | None:
        """Wrong JSON types, unknown fields, non-base64 binaries: refused before scheduling.

        A null or missing required member, or a table name DynamoDB refuses, is
        DynamoDB's ``ValidationException`` when the task runs, as on AWS.
        """
        if action not in ACTIONS:
            return None
        if not isinstance(parameters, dict):
            return f"The parameters of dynamodb:{action} must be a JSON object"
        for name in _ATTRIBUTE_MAPS:
            values = parameters.get(name)
            if isinstance(values, dict):
                problem = _base64_problem(values, name)
                if problem is not None:
                    return problem
        return shape_problem("dynamodb", ACTIONS[action], without_nulls(parameters))

    def call(self, request: TaskRequest, clients: TaskClients) -> TaskOutcome:
        """Perform the item action; DynamoDB's response, or its error as Step Functions names it."""
        operation = ACTIONS[request.action]
        parameters = request.parameters
        if not isinstance(parameters, dict):
            return not_an_object(request, f"dynamodb:{request.action}")
        call = {k: v for k, v in parameters.items() if v is not None}
        try:
            for name in _ATTRIBUTE_MAPS:
                if isinstance(call.get(name), dict):
                    call[name] = _decode_map(call[name], name)
        except _NotBase64 as problem:
            return unusable(request, str(problem))
        table = call.get("TableName")
        client = request.client(clients, "dynamodb", arn_region(table))
        violations = _table_violations(table) if isinstance(table, str) else []
        return call_optimized(request, client, operation, call, DYNAMODB, violations)


def _table_violations(table: str) -> list[str]:
    """AWS's constraint violations of a table name (a table ARN is accepted too)."""
    if TABLE_ARN.fullmatch(table):
        return []
    found = []
    if not TABLE_NAME.fullmatch(table):
        found.append(
            f"Value '{table}' at 'tableName' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
        )
    if not 3 <= len(table) <= 255:
        found.append(
            f"Value '{table}' at 'tableName' failed to satisfy constraint: "
            "Member must have length less than or equal to 255"
            if len(table) > 255
            else f"Value '{table}' at 'tableName' failed to satisfy constraint: "
            "Member must have length greater than or equal to 3"
        )
    return found


def _base64_problem(values: dict[str, Any], where: str) -> str | None:
    """The first binary value of an attribute map that is not base64 text (read only)."""
    try:
        for name, value in values.items():
            _check_value(value, f"{where}.{name}")
    except _NotBase64 as problem:
        return str(problem)
    return None


def _check_value(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        return
    if isinstance(value.get("B"), str):
        _b64(value["B"], "B", where)
    if isinstance(value.get("BS"), list):
        for b in value["BS"]:
            if isinstance(b, str):
                _b64(b, "BS", where)
    if isinstance(value.get("M"), dict):
        for name, member in value["M"].items():
            _check_value(member, f"{where}.{name}")
    if isinstance(value.get("L"), list):
        for member in value["L"]:
            _check_value(member, where)


class _NotBase64(ValueError):
    """A binary attribute value that is not base64 text."""


def _decode_map(values: dict[str, Any], where: str) -> dict[str, Any]:
    """A map of attribute values with ``B``/``BS`` decoded from base64 (raises _NotBase64)."""
    return {name: _decode_value(value, f"{where}.{name}") for name, value in values.items()}


def _decode_value(value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        return value  # botocore reports the wrong type
    out = dict(value)
    if isinstance(value.get("B"), str):
        out["B"] = _b64(value["B"], "B", where)
    if isinstance(value.get("BS"), list):
        out["BS"] = [_b64(b, "BS", where) if isinstance(b, str) else b for b in value["BS"]]
    if isinstance(value.get("M"), dict):
        out["M"] = _decode_map(value["M"], where)
    if isinstance(value.get("L"), list):
        out["L"] = [_decode_value(v, where) for v in value["L"]]
    return out


def _b64(text: str, field: str, where: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        message = f"The value for the field '{field}' at '{where}' must be base64 text"
        raise _NotBase64(message) from None


INTEGRATIONS: tuple[Integration, ...] = (DynamoDBItems(),)
"""The DynamoDB integrations StepFlow ships."""
