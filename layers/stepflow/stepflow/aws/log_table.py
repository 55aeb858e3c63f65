"""What every part of the DynamoDB log shares: its errors, keys and refused requests.

:class:`~stepflow.aws.dynamodb_log.DynamoDBLog` calls the table through one
wrapper that turns a failed condition into :class:`Rejected` and an outage
into :class:`LogUnavailableError`; :mod:`stepflow.aws.log_leases`,
:mod:`stepflow.aws.log_history` and :mod:`stepflow.aws.log_lifecycle` receive that
wrapper as a :data:`TableCall`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TableCall = Callable[..., dict[str, Any]]
"""``call(operation, **request)``: one DynamoDB request on the log table."""

HEAD = "HEAD"
"""The sort key of an execution's head item."""

CONFLICTS = ("ConditionalCheckFailed", "TransactionConflict")
"""Cancellation reasons of a transaction that lost a race (not an outage)."""


class LogUnavailableError(Exception):
    """DynamoDB could not be reached or refused the request (throttling, outage, ...)."""


class LogIntegrityError(Exception):
    """The table contradicts the log's invariants (e.g. an event id written twice)."""


class Rejected(Exception):
    """A request refused for an expected reason (a failed condition)."""

    def __init__(self, code: str, response: dict[str, Any]) -> None:
        super().__init__(code)
        self.code, self.response = code, response


def key(execution_arn: str, sk: str) -> dict[str, Any]:
    """The primary key of an item in an execution's partition."""
    return {"pk": {"S": f"EX#{execution_arn}"}, "sk": {"S": sk}}


def reasons(rejected: Rejected) -> list[dict[str, Any]]:
    """A cancelled transaction's reasons, padded so ``[0]`` and ``[1]`` always exist."""
    found: list[dict[str, Any]] = rejected.response.get("CancellationReasons") or []
    return [*found, {}, {}]


def call_table(client: Any, table: str, operation: str, **kwargs: Any) -> dict[str, Any]:
    """One request on ``table``: failed conditions become :class:`Rejected`, outages wrapped."""
    if operation not in ("transact_write_items", "batch_get_item", "batch_write_item"):
        kwargs["TableName"] = table  # the others name the table in each of their items
    try:
        response: dict[str, Any] = getattr(client, operation)(**kwargs)
        return response
    except Exception as exc:
        response = getattr(exc, "response", None) or {}
        code = str(response.get("Error", {}).get("Code", ""))
        # A plain write that meets a transaction in flight on its item fails with
        # TransactionConflictException: a lost race, like a failed condition.
        rejected = ("ConditionalCheckFailedException", "TransactionCanceledException")
        if code in rejected or code == "TransactionConflictException":
            raise Rejected(code, response) from exc
        kind = type(exc)
        if kind.__module__.startswith("botocore") and kind.__name__ != "ParamValidationError":
            raise LogUnavailableError(f"DynamoDB {operation} failed: {exc}") from exc
        raise
