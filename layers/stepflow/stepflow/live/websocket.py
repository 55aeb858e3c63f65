"""The deployed live view: API Gateway WebSocket handlers and the hook that pushes events.

Routes (one function, ``functions/live``, dispatching on ``routeKey``):

- ``$connect`` (IAM-authorized by API Gateway): records the connection and its
  caller (``pk = LIVEC#<connection id>``), conditionally (never over another), with a TTL.
- ``subscribe`` (``{"action": "subscribe", "executionArn": ..., "after": N}``):
  one execution per connection. The caller recorded at ``$connect`` must be
  allowed ``states:GetExecutionHistory`` on the execution's state machine by the
  API's access policy (``STEPFLOW_ACCESS_POLICY``, as the REST API); a denied
  and an unknown execution get the same 403. A transaction checks the
  connection is recorded and not subscribed to another execution (subscribing
  again to the same one resumes from the new ``after``), writes the subscription
  (``pk = LIVE#<execution arn>, sk = C#<connection id>``, ``after`` = the last
  id pushed, a TTL) and marks the table as watched (``pk = LIVE, sk = ANY``,
  ``until`` = the subscription's expiry); then the backlog is pushed, within
  the time budget (:mod:`stepflow.live.push`).
- ``unsubscribe``: ends the subscription (the connection may subscribe again).
- ``$disconnect``: deletes the connection and its subscription.

API Gateway closes a connection after 10 minutes idle (2 hours at most): a
client reconnects and subscribes again with the last ``id`` it saw as ``after``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from stepflow.api.access import AccessPolicy
from stepflow.aws.topology import TTL_ATTRIBUTE
from stepflow.live.push import GoneError, Pusher, api_poster, encode
from stepflow.runtime.ports import ExecutionRecord

__all__ = [
    "ENDPOINT_ENV_VAR",
    "GoneError",
    "Subscriptions",
    "api_poster",
    "encode",
    "handle",
]

ENDPOINT_ENV_VAR = "STEPFLOW_LIVE_ENDPOINT"
"""The WebSocket API's management endpoint (``https://<id>.execute-api.<region>...
/<stage>``) the hook posts to."""
TTL_SECONDS = 2 * 3600
"""API Gateway closes a WebSocket connection after 2 hours: its records expire then."""
MAX_BODY_BYTES = 4096
BACKLOG_SECONDS = 25.0
"""A subscribe's backlog stops after this long (API Gateway waits 29 s for the route):
the next push of the execution resumes it."""
ACTION = "states:GetExecutionHistory"
"""What a subscription reads, as the access policy names it."""
_CONNECTION, _SUBSCRIPTION = "LIVEC#", "LIVE#"
_WATCHED = {"pk": {"S": "LIVE"}, "sk": {"S": "ANY"}}
_NOT_VISIBLE = "ExecutionDoesNotExist or AccessDenied: no execution you may read"


@dataclass
class Subscriptions(Pusher):
    """The connection and subscription items on the log table, and the pushes."""

    policy: AccessPolicy | None = None
    """The API's access policy (None: IAM on ``$connect`` decides alone)."""

    def connect(self, connection: str, caller: str) -> None:
        """Record ``connection`` (refused if it already is: ``ConditionalCheckFailed``)."""
        self.dynamodb.put_item(
            TableName=self.table,
            Item={
                **_key(_CONNECTION + connection, "C"),
                "caller": {"S": caller or "unknown"},
                TTL_ATTRIBUTE: {"N": str(int(self.clock()) + TTL_SECONDS)},
            },
            ConditionExpression="attribute_not_exists(pk)",
        )

    def connection(self, connection: str) -> dict[str, Any]:
        """The connection's record (empty: not recorded)."""
        found: dict[str, Any] = self.dynamodb.get_item(
            TableName=self.table, Key=_key(_CONNECTION + connection, "C"), ConsistentRead=True
        ).get("Item", {})
        return found

    def may_read(self, caller: str | None, execution_arn: str) -> bool:
        """Whether ``caller`` may read the execution's history, and it exists."""
        machine = execution_arn.split(":")[6] if execution_arn.count(":") >= 7 else ""
        if self.policy is not None and not self.policy.allows(caller, ACTION, machine):
            return False
        record: ExecutionRecord | None = self.log.get(execution_arn)
        return record is not None

    def subscribe(
        self, connection: str, execution_arn: str, after: int, deadline: float | None = None
    ) -> None:
        """Subscribe ``connection`` (recorded, not on another execution); push the backlog."""
        expires = {"N": str(int(self.clock()) + TTL_SECONDS)}
        self.dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": _key(_CONNECTION + connection, "C"),
                        "UpdateExpression": "SET execution_arn = :arn",
                        "ConditionExpression": "attribute_exists(pk) "
                        "AND (attribute_not_exists(execution_arn) OR execution_arn = :arn)",
                        "ExpressionAttributeValues": {":arn": {"S": execution_arn}},
                    }
                },
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": {
                            **_key(_SUBSCRIPTION + execution_arn, "C#" + connection),
                            "after": {"N": str(after)},
                            TTL_ATTRIBUTE: expires,
                        },
                    }
                },
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": _WATCHED,
                        "UpdateExpression": "SET #u = :u",
                        "ExpressionAttributeNames": {"#u": "until"},
                        "ExpressionAttributeValues": {":u": expires},
                    }
                },
            ]
        )
        self.push(execution_arn, [(connection, after)], deadline)

    def unsubscribe(self, connection: str) -> None:
        """End the connection's subscription, if any (it may subscribe again)."""
        arn = self.connection(connection).get("execution_arn", {}).get("S")
        if arn:
            self.end(arn, connection)

    def disconnect(self, connection: str) -> None:
        """Delete ``connection`` and its subscription (both may be gone already)."""
        arn = self.connection(connection).get("execution_arn", {}).get("S")
        if arn:
            self.remove(arn, connection)
        self.dynamodb.delete_item(TableName=self.table, Key=_key(_CONNECTION + connection, "C"))

    def watched(self) -> bool:
        """Whether a subscription may exist (the ``LIVE``/``ANY`` item's ``until`` is ahead)."""
        item = self.dynamodb.get_item(TableName=self.table, Key=_WATCHED, ConsistentRead=True)
        until = item.get("Item", {}).get("until", {}).get("N")
        return until is not None and int(until) >= self.clock()

    def subscribers(self, execution_arn: str) -> list[tuple[str, int]]:
        """``(connection id, last id pushed)`` of each subscription to ``execution_arn``."""
        found: list[tuple[str, int]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": _SUBSCRIPTION + execution_arn}},
            "ConsistentRead": True,
        }
        while True:
            page = self.dynamodb.query(**kwargs)
            found += [(i["sk"]["S"][2:], int(i["after"]["N"])) for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def advance(self, arn: str, connection: str, old: int, new: int) -> bool:
        """Move the subscription's ``after`` from ``old`` to ``new`` (False: moved by another)."""
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key=_key(_SUBSCRIPTION + arn, "C#" + connection),
                UpdateExpression="SET #a = :new",
                ConditionExpression="#a = :old",
                ExpressionAttributeNames={"#a": "after"},
                ExpressionAttributeValues={":new": {"N": str(new)}, ":old": {"N": str(old)}},
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            return False  # another push moved it, or it was removed: theirs stands
        return True

    def end(self, arn: str, connection: str) -> None:
        """Delete the subscription and free the connection for another."""
        self.dynamodb.delete_item(
            TableName=self.table, Key=_key(_SUBSCRIPTION + arn, "C#" + connection)
        )
        with contextlib.suppress(self.dynamodb.exceptions.ConditionalCheckFailedException):
            self.dynamodb.update_item(
                TableName=self.table,
                Key=_key(_CONNECTION + connection, "C"),
                UpdateExpression="REMOVE execution_arn",
                ConditionExpression="execution_arn = :arn",
                ExpressionAttributeValues={":arn": {"S": arn}},
            )

    def remove(self, arn: str, connection: str) -> None:
        """Delete the subscription and the connection (closed: 410 Gone, or disconnected)."""
        self.dynamodb.delete_item(
            TableName=self.table, Key=_key(_SUBSCRIPTION + arn, "C#" + connection)
        )
        self.dynamodb.delete_item(TableName=self.table, Key=_key(_CONNECTION + connection, "C"))


def handle(
    event: Mapping[str, Any],
    subscriptions: Subscriptions,
    remaining: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """A WebSocket route's proxy event -> its answer (``statusCode``, ``body``).

    ``remaining``: the invocation's seconds left (the backlog stops before them).
    """
    context = event.get("requestContext") or {}
    route, connection = context.get("routeKey"), str(context.get("connectionId") or "")
    if not connection:
        return _answer(400, "no connection id")
    if route == "$connect":
        caller = str((context.get("identity") or {}).get("userArn") or "")
        try:
            subscriptions.connect(connection, caller)
        except subscriptions.dynamodb.exceptions.ConditionalCheckFailedException:
            return _answer(409, "connection already recorded")
        return _answer(200, "connected")
    if route == "$disconnect":
        subscriptions.disconnect(connection)
        return _answer(200, "disconnected")
    if route == "unsubscribe":
        subscriptions.unsubscribe(connection)
        return _answer(200, "unsubscribed")
    if route == "subscribe":
        budget = BACKLOG_SECONDS if remaining is None else min(BACKLOG_SECONDS, remaining() - 2)
        return _subscribe(event, connection, subscriptions, subscriptions.monotonic() + budget)
    return _answer(400, f"unknown route {str(route)[:50]!r}: send an action 'subscribe'")


def _subscribe(
    event: Mapping[str, Any], connection: str, subscriptions: Subscriptions, deadline: float
) -> dict[str, Any]:
    body = event.get("body")
    if not isinstance(body, str) or len(body) > MAX_BODY_BYTES:
        return _answer(400, f"a JSON body of at most {MAX_BODY_BYTES} bytes")
    try:
        request = json.loads(body)
    except ValueError:
        return _answer(400, "the body is not JSON")
    arn = request.get("executionArn") if isinstance(request, dict) else None
    after = request.get("after", 0) if isinstance(request, dict) else None
    if not isinstance(arn, str) or not arn.startswith("arn:") or ":states:" not in arn:
        return _answer(400, "executionArn: an execution ARN")
    if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after < 10**12:
        return _answer(400, "after: an event id, 0 for the start")
    record = subscriptions.connection(connection)
    if not record:
        return _answer(409, "not connected")
    caller = record.get("caller", {}).get("S", "")
    if not subscriptions.may_read(caller if caller.startswith("arn:") else None, arn):
        return _answer(403, _NOT_VISIBLE)
    try:
        subscriptions.subscribe(connection, arn, after, deadline)
    except subscriptions.dynamodb.exceptions.TransactionCanceledException:
        return _answer(409, "not connected, or subscribed to another execution")
    return _answer(200, "subscribed")


def _answer(status: int, message: str) -> dict[str, Any]:
    return {"statusCode": status, "body": json.dumps({"message": message})}


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}
