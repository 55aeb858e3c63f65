"""The deployed live view: API Gateway WebSocket handlers and the hook that pushes events.

Routes (one function, ``functions/live``, dispatching on ``routeKey``):

- ``$connect`` (IAM-authorized by API Gateway): records the connection
  (``pk = LIVEC#<connection id>``), conditionally (never over another), with a TTL.
- ``subscribe`` (``{"action": "subscribe", "executionArn": ..., "after": N}``):
  one execution per connection. A transaction checks the connection is recorded
  and not yet subscribed, writes the subscription (``pk = LIVE#<execution arn>,
  sk = C#<connection id>``, ``after`` = the last id pushed, a TTL) and marks the
  connection; then the history after ``after`` is pushed at once (the backlog).
- ``$disconnect``: deletes the connection and its subscription.

:class:`LiveHook` (``STEPFLOW_HOOKS=...,live``, on the hooks dispatcher, so the
stream is decoded once, by :mod:`stepflow.aws.stream_records`): for each
execution in a batch it reads the subscriptions and pushes to each connection
the history after its ``after``, read in order from the log by
:class:`~stepflow.live.tail.Tail` (every history event, not only hook kinds),
then moves ``after`` on with a conditional update. A subscription ends after
the ending event; a connection gone (410) is deleted. Delivery is at least once
(a retried batch, a backlog racing a push): each message is one event with its
``id``; clients drop ids at or below the last they saw, and see them in order.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import boto3

from stepflow.aws.dynamodb_log import DynamoDBLog
from stepflow.aws.s3_payloads import S3PayloadStore
from stepflow.aws.topology import TTL_ATTRIBUTE
from stepflow.hooks import HookEvent, HookKind
from stepflow.live.tail import Tail

LOG = logging.getLogger(__name__)

__all__ = [
    "ENDPOINT_ENV_VAR",
    "LiveHook",
    "Subscriptions",
    "handle",
    "live_hook_factory",
]

ENDPOINT_ENV_VAR = "STEPFLOW_LIVE_ENDPOINT"
"""The WebSocket API's management endpoint (``https://<id>.execute-api.<region>...
/<stage>``) the hook posts to."""
TTL_SECONDS = 2 * 3600
"""API Gateway closes a WebSocket connection after 2 hours: its records expire then."""
MAX_MESSAGE_BYTES = 120 * 1024
"""API Gateway's WebSocket message limit is 128 KB: a larger event is sent without its
details (``truncated``: read it with GetExecutionHistory)."""
MAX_BODY_BYTES = 4096
_CONNECTION, _SUBSCRIPTION = "LIVEC#", "LIVE#"


@dataclass
class Subscriptions:
    """The connection and subscription items on the log table, and the pushes."""

    table: str
    dynamodb: Any
    log: DynamoDBLog
    post: Callable[[str, bytes], None]
    """``post(connection id, data)``; raises ``GoneError`` for a closed connection."""
    clock: Callable[[], float] = time.time
    pushed: int = 0

    def connect(self, connection: str, caller: str) -> None:
        """Record ``connection`` (refused if it already is: ``ConditionalCheckFailed``)."""
        self.dynamodb.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": _CONNECTION + connection},
                "sk": {"S": "C"},
                "caller": {"S": caller or "unknown"},
                TTL_ATTRIBUTE: {"N": str(int(self.clock()) + TTL_SECONDS)},
            },
            ConditionExpression="attribute_not_exists(pk)",
        )

    def subscribe(self, connection: str, execution_arn: str, after: int) -> None:
        """Subscribe ``connection`` (recorded, not yet subscribed) and push the backlog."""
        expires = {"N": str(int(self.clock()) + TTL_SECONDS)}
        self.dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": _key(_CONNECTION + connection, "C"),
                        "UpdateExpression": "SET execution_arn = :arn",
                        "ConditionExpression": "attribute_exists(pk) "
                        "AND attribute_not_exists(execution_arn)",
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
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
        self.push(execution_arn, [(connection, after)])

    def disconnect(self, connection: str) -> None:
        """Delete ``connection`` and its subscription (both may be gone already)."""
        found = self.dynamodb.get_item(
            TableName=self.table, Key=_key(_CONNECTION + connection, "C"), ConsistentRead=True
        ).get("Item", {})
        arn = found.get("execution_arn", {}).get("S")
        if arn:
            self._unsubscribe(arn, connection)
        self.dynamodb.delete_item(TableName=self.table, Key=_key(_CONNECTION + connection, "C"))

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

    def push(self, execution_arn: str, subscribers: Sequence[tuple[str, int]]) -> None:
        """Push each subscriber the history after its ``after``, in order, and move it on."""
        for connection, after in subscribers:
            tail = Tail(self._reader(execution_arn), after=after)
            events = tail.poll()
            try:
                for event in events:
                    self.post(connection, encode(event))
                    self.pushed += 1
            except GoneError:
                self._unsubscribe(execution_arn, connection)
                self.dynamodb.delete_item(
                    TableName=self.table, Key=_key(_CONNECTION + connection, "C")
                )
                continue
            if tail.ended:
                self._unsubscribe(execution_arn, connection)
            elif events:
                self._advance(execution_arn, connection, after, tail.last)

    def _advance(self, arn: str, connection: str, old: int, new: int) -> None:
        # Another push may have moved it (or it was removed): theirs stands.
        with contextlib.suppress(self.dynamodb.exceptions.ConditionalCheckFailedException):
            self.dynamodb.update_item(
                TableName=self.table,
                Key=_key(_SUBSCRIPTION + arn, "C#" + connection),
                UpdateExpression="SET #a = :new",
                ConditionExpression="#a = :old",
                ExpressionAttributeNames={"#a": "after"},
                ExpressionAttributeValues={":new": {"N": str(new)}, ":old": {"N": str(old)}},
            )

    def _unsubscribe(self, arn: str, connection: str) -> None:
        self.dynamodb.delete_item(
            TableName=self.table, Key=_key(_SUBSCRIPTION + arn, "C#" + connection)
        )

    def _reader(self, arn: str) -> Any:
        def read(token: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
            page = self.log.history(arn, next_token=token, limit=limit)
            return list(page.events), page.next_token

        return read


class GoneError(Exception):
    """The connection is closed (API Gateway answered 410 Gone)."""


def encode(event: dict[str, Any]) -> bytes:
    """One message: the event as JSON; one over the limit loses its details (``truncated``)."""
    data = json.dumps(event, separators=(",", ":"), default=str).encode()
    if len(data) <= MAX_MESSAGE_BYTES:
        return data
    kept = {k: event[k] for k in ("id", "type", "previousEventId", "timestamp") if k in event}
    return json.dumps({**kept, "truncated": True}, separators=(",", ":"), default=str).encode()


class LiveHook:
    """Pushes each execution's new history events to its subscribers (see the module doc)."""

    name = "live"
    kinds: frozenset[HookKind] | None = None

    def __init__(self, subscriptions: Subscriptions) -> None:
        self.subscriptions = subscriptions

    def handle(self, events: Sequence[HookEvent]) -> None:
        """Push every execution the events are of, once per batch."""
        arns = dict.fromkeys(e.execution.execution_arn for e in events)
        for arn in arns:
            subscribers = self.subscriptions.subscribers(arn)
            if subscribers:
                self.subscriptions.push(arn, subscribers)


def api_poster(management: Any) -> Callable[[str, bytes], None]:
    """``post`` over an ``apigatewaymanagementapi`` client (410 Gone: :class:`GoneError`)."""

    def post(connection: str, data: bytes) -> None:
        try:
            management.post_to_connection(ConnectionId=connection, Data=data)
        except management.exceptions.GoneException:
            raise GoneError(connection) from None

    return post


def live_hook_factory(settings: Any, clients: Callable[[str], Any]) -> LiveHook:
    """The ``live`` hook of the hooks dispatcher (``STEPFLOW_LIVE_ENDPOINT`` names the API).

    ``settings`` are the process's (table, bucket, region); ``clients`` a boto3 client
    factory (a :class:`~stepflow.aws.wiring.Wiring`'s ``client``: its log is used).
    """
    endpoint = os.environ.get(ENDPOINT_ENV_VAR, "")
    if not endpoint.startswith(("https://", "http://")):
        raise ValueError(f"the live hook needs {ENDPOINT_ENV_VAR}: the WebSocket API's URL")
    wiring = getattr(clients, "__self__", None)
    log = getattr(wiring, "log", None)
    if not isinstance(log, DynamoDBLog):
        bucket = settings.payload_bucket
        log = DynamoDBLog(
            settings.table_name,
            client=clients("dynamodb"),
            payloads=S3PayloadStore(bucket, client=clients("s3")) if bucket else None,
        )
    management = boto3.client(
        "apigatewaymanagementapi", endpoint_url=endpoint, region_name=settings.region
    )
    return LiveHook(
        Subscriptions(settings.table_name, clients("dynamodb"), log, api_poster(management))
    )


def handle(event: Mapping[str, Any], subscriptions: Subscriptions) -> dict[str, Any]:
    """A WebSocket route's proxy event -> its answer (``statusCode``, ``body``)."""
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
    if route == "subscribe":
        return _subscribe(event, connection, subscriptions)
    return _answer(400, f"unknown route {str(route)[:50]!r}: send an action 'subscribe'")


def _subscribe(
    event: Mapping[str, Any], connection: str, subscriptions: Subscriptions
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
    if subscriptions.log.get(arn) is None:
        return _answer(404, f"ExecutionDoesNotExist: {arn}")
    try:
        subscriptions.subscribe(connection, arn, after)
    except subscriptions.dynamodb.exceptions.TransactionCanceledException:
        return _answer(409, "not connected, or already subscribed")
    return _answer(200, "subscribed")


def _answer(status: int, message: str) -> dict[str, Any]:
    return {"statusCode": status, "body": json.dumps({"message": message})}


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}
