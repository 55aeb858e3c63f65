"""The deployed live view over moto: WebSocket routes, and the live hook on the real hooks
dispatcher handler fed from the table's stream, pushing with post_to_connection.

Counted: each subscriber receives every history event of the execution (not only the
hook kinds) exactly once and in order, the backlog included; a redelivered stream
pushes nothing more; connection records are conditional writes with a TTL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config

from tests.hook_support import HANDLERS, INPUT, MACHINE, stream_records

boto3 = pytest.importorskip("boto3")

from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends  # noqa: E402
from stepflow.aws import DynamoDBLog, hooks_lambda  # noqa: E402
from stepflow.aws.settings import Settings  # noqa: E402
from stepflow.aws.stream_records import StreamDecoder  # noqa: E402
from stepflow.aws.wiring import hooks_from_settings  # noqa: E402
from stepflow.hooks import Dispatcher  # noqa: E402
from stepflow.live import websocket_lambda  # noqa: E402
from stepflow.live.live_hook import LiveHook  # noqa: E402
from stepflow.live.websocket import (  # noqa: E402
    GoneError,
    Subscriptions,
    api_poster,
    handle,
)
from stepflow.local.gateway import CONTEXT  # noqa: E402
from stepflow.local.stream_poller import ensure_stream  # noqa: E402
from stepflow.testing import WorkflowEnvironment  # noqa: E402
from stepflow.testing.durable import moto_environment  # noqa: E402

TABLE = "stepflow-testing"
DOMAIN = "abc123.execute-api.us-east-1.amazonaws.com"


class Rig:
    """A durable environment on moto, its table's stream, and the live subscriptions."""

    def __init__(self, env: WorkflowEnvironment) -> None:
        self.env = env
        self.dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        self.stream = ensure_stream(self.dynamodb, TABLE)
        self.streams = boto3.client(
            "dynamodbstreams",
            region_name="us-east-1",
            config=Config(account_id_endpoint_mode="disabled"),
        )
        self.log = DynamoDBLog(TABLE, client=self.dynamodb)
        management = boto3.client(
            "apigatewaymanagementapi", endpoint_url=f"https://{DOMAIN}/v1", region_name="us-east-1"
        )
        self.subs = Subscriptions(TABLE, self.dynamodb, self.log, api_poster(management))
        hooks_lambda.configure(
            hooks_lambda.HooksRuntime(StreamDecoder(self.log), Dispatcher([LiveHook(self.subs)]))
        )

    def route(self, route: str, connection: str, body: Any = None) -> dict[str, Any]:
        event: dict[str, Any] = {
            "requestContext": {
                "routeKey": route,
                "connectionId": connection,
                "domainName": DOMAIN,
                "stage": "v1",
                "identity": {"userArn": "arn:aws:iam::000000000000:user/alice"},
            }
        }
        if body is not None:
            event["body"] = body if isinstance(body, str) else json.dumps(body)
        return handle(event, self.subs)

    def deliver_stream(self) -> None:
        records = stream_records(self.streams, self.stream)
        for i in range(0, len(records), 7):
            answer = hooks_lambda.handler({"Records": records[i : i + 7]}, CONTEXT)
            assert answer == {"batchItemFailures": []}

    def item(self, pk: str, sk: str) -> dict[str, Any]:
        key = {"pk": {"S": pk}, "sk": {"S": sk}}
        found: dict[str, Any] = self.dynamodb.get_item(TableName=TABLE, Key=key).get("Item", {})
        return found


def received(connection: str) -> list[dict[str, Any]]:
    """The messages moto's management API was posted for ``connection``, in order."""
    data = apigatewaymanagementapi_backends["123456789012"]["us-east-1"]
    raw = data.connections[connection].data.decode() if connection in data.connections else ""
    decoder, out, at = json.JSONDecoder(), [], 0
    while at < len(raw):
        message, at = decoder.raw_decode(raw, at)
        out.append(message)
    return out


@pytest.fixture
def rig() -> Iterator[Rig]:
    with moto_environment(handlers=HANDLERS) as env:
        yield Rig(env)
    hooks_lambda.configure(None)
    websocket_lambda.configure(None)


def test_subscribers_get_every_event_once_in_order_backlog_included(rig: Rig) -> None:
    arn = rig.env.start(MACHINE, INPUT, name="watched")
    for connection, after in (("c1", 0), ("c2", 5)):
        assert rig.route("$connect", connection)["statusCode"] == 200
        subscribe = {"action": "subscribe", "executionArn": arn, "after": after}
        assert rig.route("subscribe", connection, subscribe)["statusCode"] == 200
    backlog = [e["id"] for e in rig.env.history(arn)]
    assert [m["id"] for m in received("c1")] == backlog  # the backlog, at once
    rig.env.run(arn)
    rig.deliver_stream()
    history = rig.env.history(arn)
    assert len(history) > 30 and history[-1]["type"] == "ExecutionSucceeded"
    assert [(m["id"], m["type"]) for m in received("c1")] == [(e["id"], e["type"]) for e in history]
    assert [m["id"] for m in received("c2")] == list(range(6, len(history) + 1))
    assert rig.subs.pushed == len(history) + len(history) - 5
    # The ending event ended both subscriptions: a redelivered stream pushes nothing.
    assert rig.subs.subscribers(arn) == []
    rig.deliver_stream()
    assert rig.subs.pushed == 2 * len(history) - 5


def test_connection_records_are_conditional_with_a_ttl_and_disconnect_removes_them(
    rig: Rig,
) -> None:
    arn = rig.env.start(MACHINE, INPUT, name="records")
    assert rig.route("$connect", "c1")["statusCode"] == 200
    assert rig.route("$connect", "c1")["statusCode"] == 409  # never over another
    record = rig.item("LIVEC#c1", "C")
    assert record["caller"]["S"].endswith(":user/alice") and int(record["expires_at"]["N"]) > 0
    body = {"action": "subscribe", "executionArn": arn}
    assert rig.route("subscribe", "c1", body)["statusCode"] == 200
    assert rig.route("subscribe", "c1", body)["statusCode"] == 200  # again: resumes
    other = {"action": "subscribe", "executionArn": rig.env.start(MACHINE, INPUT, name="other")}
    assert rig.route("subscribe", "c1", other)["statusCode"] == 409  # one per connection
    assert rig.route("subscribe", "nobody", body)["statusCode"] == 409  # not connected
    assert int(rig.item(f"LIVE#{arn}", "C#c1")["expires_at"]["N"]) > 0
    assert rig.route("$disconnect", "c1")["statusCode"] == 200
    assert rig.item("LIVEC#c1", "C") == {} and rig.item(f"LIVE#{arn}", "C#c1") == {}
    assert rig.route("$disconnect", "c1")["statusCode"] == 200  # twice: harmless


HOSTILE: list[tuple[Any, int]] = [
    ("not json", 400),
    ("x" * 10_000, 400),
    ([1, 2], 400),
    ({"executionArn": 7}, 400),
    ({"executionArn": "arn:aws:states:us-east-1:1:execution:m:e", "after": -1}, 400),
    ({"executionArn": "arn:aws:states:us-east-1:1:execution:m:e", "after": True}, 400),
    ({"executionArn": "arn:aws:states:us-east-1:1:execution:m:e", "after": "3"}, 400),
    ({"executionArn": "arn:aws:states:us-east-1:123456789012:execution:m:none"}, 403),
]


def test_hostile_subscriptions_are_refused_and_leave_the_connection_usable(rig: Rig) -> None:
    assert rig.route("$connect", "c1")["statusCode"] == 200
    for body, status in HOSTILE:
        assert rig.route("subscribe", "c1", body)["statusCode"] == status, body
    assert rig.route("nonsense", "c1")["statusCode"] == 400
    assert rig.route("$connect", "")["statusCode"] == 400
    arn = rig.env.start(MACHINE, INPUT, name="after-hostile")
    assert rig.route("subscribe", "c1", {"executionArn": arn})["statusCode"] == 200


def test_a_gone_connection_loses_its_records(rig: Rig) -> None:
    arn = rig.env.start(MACHINE, INPUT, name="gone")
    posts: list[str] = []

    def gone(connection: str, data: bytes) -> None:
        posts.append(connection)
        raise GoneError(connection)

    rig.route("$connect", "c1")
    rig.subs.post = gone
    assert rig.route("subscribe", "c1", {"executionArn": arn})["statusCode"] == 200
    assert posts == ["c1"]
    assert rig.item(f"LIVE#{arn}", "C#c1") == {} and rig.item("LIVEC#c1", "C") == {}


def test_the_lambda_entry_point_posts_to_the_api_named_by_the_event(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    arn = rig.env.start(MACHINE, INPUT, name="entry")
    monkeypatch.setenv("TABLE_NAME", TABLE)  # as the stack sets it
    websocket_lambda.configure(None)
    base = {"connectionId": "e1", "domainName": DOMAIN, "stage": "v1"}
    connect = {"requestContext": {**base, "routeKey": "$connect"}}
    subscribe = {
        "requestContext": {**base, "routeKey": "subscribe"},
        "body": json.dumps({"executionArn": arn}),
    }
    assert websocket_lambda.handler(connect, CONTEXT)["statusCode"] == 200
    assert websocket_lambda.handler(subscribe, CONTEXT)["statusCode"] == 200
    assert [m["id"] for m in received("e1")] == [e["id"] for e in rig.env.history(arn)]


def test_stepflow_hooks_live_builds_the_hook_from_the_environment(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.setenv("STEPFLOW_HOOKS", "metrics,live")
    settings = Settings.from_environ()
    with pytest.raises(ValueError, match="STEPFLOW_LIVE_ENDPOINT"):
        hooks_from_settings(settings, boto3.client)
    monkeypatch.setenv("STEPFLOW_LIVE_ENDPOINT", f"https://{DOMAIN}/v1")
    hooks = hooks_from_settings(settings, boto3.client)
    assert [hook.name for hook in hooks][-1] == "live"
    arn = rig.env.start(MACHINE, INPUT, name="built")
    rig.route("$connect", "b1")
    rig.route("subscribe", "b1", {"executionArn": arn})
    rig.env.run(arn)
    hooks_lambda.configure(
        hooks_lambda.HooksRuntime(StreamDecoder(rig.log), Dispatcher([hooks[-1]]))
    )
    rig.deliver_stream()
    assert [m["id"] for m in received("b1")] == [e["id"] for e in rig.env.history(arn)]
