"""Webhooks against a local HTTP server: deliveries counted, signatures verified,
retries counted, dead letters after the last retry, refused addresses."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from stepflow.hooks import ExecutionInfo, HookEvent, hook_events
from stepflow.integrations.http_denied import DeniedEndpoints
from stepflow.integrations.http_port import Urllib3Http
from stepflow.integrations.webhooks import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    MemoryDeadLetter,
    WebhookHook,
    WebhookTarget,
    verify,
)
from stepflow.testing import execute

from tests.moto_env import offline_aws

SECRET = b"a-webhook-secret-of-some-length"
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:Orders"
ARN = "arn:aws:states:us-east-1:123456789012:execution:Orders:e1"


@dataclass
class Server:
    url: str = ""
    seen: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    answer: Callable[[int], int] = lambda _: 200


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                state.seen.append((dict(self.headers.items()), body))
                status = state.answer(len(state.seen))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def _events() -> list[HookEvent]:
    definition = {
        "StartAt": "Work",
        "States": {
            "Work": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": True}
        },
    }
    result = execute(definition, {"a": 1}, handlers={"arn:aws:states:::lambda:invoke": lambda x: x})
    return list(hook_events(ExecutionInfo(ARN, SM, "e1"), result.history))


def _hook(
    targets: list[WebhookTarget],
    dead: MemoryDeadLetter,
    sleeps: list[float],
    *,
    denied: DeniedEndpoints | None = None,
    attempts: int = 3,
) -> WebhookHook:
    return WebhookHook(
        targets,
        secret=SECRET,
        http=Urllib3Http(denied=denied, allow_loopback=True),
        dead_letter=dead,
        attempts=attempts,
        sleep=sleeps.append,
        timeout=5,
    )


def test_each_wanted_event_is_delivered_once_signed(server: Server) -> None:
    dead, sleeps = MemoryDeadLetter(), []
    target = WebhookTarget(server.url, kinds=frozenset({"ExecutionStarted", "ExecutionSucceeded"}))
    hook = _hook([target], dead, sleeps)
    events = _events()
    hook.handle(events + events)  # repeats in the batch
    hook.handle(events)  # and the stream's redelivery
    assert len(server.seen) == 2
    kinds = []
    for headers, body in server.seen:
        # GIVEN the receiver's copy of the secret, THEN every delivery verifies, by the
        # documented recipe: HMAC-SHA256 over "<timestamp>.<delivery id>." + the raw body
        stamp, delivery = headers[TIMESTAMP_HEADER], headers[DELIVERY_HEADER]
        signed = f"{stamp}.{delivery}.".encode() + body
        recipe = hmac.new(SECRET, signed, hashlib.sha256)
        assert headers[SIGNATURE_HEADER] == "v1=" + recipe.hexdigest()
        assert verify(SECRET, stamp, delivery, body, headers[SIGNATURE_HEADER])
        assert not verify(b"another secret", stamp, delivery, body, headers[SIGNATURE_HEADER])
        assert not verify(SECRET, stamp, delivery, body + b" ", headers[SIGNATURE_HEADER])
        # a replay of the same body and signature under a new delivery id fails
        assert not verify(SECRET, stamp, delivery + "0", body, headers[SIGNATURE_HEADER])
        document = json.loads(body)
        assert headers[DELIVERY_HEADER] == document["id"] == f"{ARN}#{document['eventId']}"
        kinds.append(document["kind"])
    assert kinds == ["ExecutionStarted", "ExecutionSucceeded"]
    assert dead.records == [] and sleeps == []


def test_an_old_signature_is_refused() -> None:
    body = b"{}"
    from stepflow.integrations.webhooks import signature

    value = signature(SECRET, "1000", "d1", body)
    assert verify(SECRET, "1000", "d1", body, value, now=1100)
    assert not verify(SECRET, "1000", "d1", body, value, now=2000)


@pytest.mark.parametrize(
    ("stamp", "value"),
    [("1000", "v1=\u00e9" + "0" * 63), ("1000", "\udcff"), ("\u00e9", "v1=00"), ("nan", "v1=")],
)
def test_a_hostile_signature_header_is_refused_not_raised(stamp: str, value: str) -> None:
    assert verify(SECRET, stamp, "d1", b"{}", value, now=1000) is False


def test_each_target_signs_with_its_own_secret(server: Server) -> None:
    dead, sleeps = MemoryDeadLetter(), []
    own = WebhookTarget(server.url + "?own", frozenset({"ExecutionSucceeded"}), secret=b"own")
    shared = WebhookTarget(server.url + "?shared", frozenset({"ExecutionSucceeded"}))
    _hook([own, shared], dead, sleeps).handle(_events())
    assert len(server.seen) == 2
    for (headers, body), secret in zip(server.seen, (b"own", SECRET), strict=True):
        stamp, delivery = headers[TIMESTAMP_HEADER], headers[DELIVERY_HEADER]
        assert verify(secret, stamp, delivery, body, headers[SIGNATURE_HEADER])
    assert "secret" not in repr(own)


def test_failures_are_retried_with_backoff_then_succeed(server: Server) -> None:
    server.answer = lambda n: 503 if n <= 2 else 200
    dead, sleeps = MemoryDeadLetter(), []
    hook = _hook([WebhookTarget(server.url, kinds=frozenset({"ExecutionSucceeded"}))], dead, sleeps)
    hook.handle(_events())
    assert len(server.seen) == 3  # two failures, one success
    assert len({h[DELIVERY_HEADER] for h, _ in server.seen}) == 1  # one delivery id throughout
    assert len(sleeps) == 2 and sleeps[1] >= sleeps[0]
    assert dead.records == []


def test_the_last_failure_goes_to_the_dead_letter_and_the_stream_moves_on(server: Server) -> None:
    server.answer = lambda _: 500
    dead, sleeps = MemoryDeadLetter(), []
    hook = _hook([WebhookTarget(server.url, kinds=frozenset({"ExecutionSucceeded"}))], dead, sleeps)
    hook.handle(_events())  # does not raise
    assert len(server.seen) == 3  # attempts
    [record] = dead.records
    assert record["url"] == server.url
    assert record["reason"].startswith("HTTP 500")
    assert json.loads(record["body"])["kind"] == "ExecutionSucceeded"


def test_a_client_error_is_not_retried(server: Server) -> None:
    server.answer = lambda _: 400
    dead, sleeps = MemoryDeadLetter(), []
    hook = _hook([WebhookTarget(server.url, kinds=frozenset({"ExecutionSucceeded"}))], dead, sleeps)
    hook.handle(_events())
    assert len(server.seen) == 1 and len(dead.records) == 1 and sleeps == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://169.254.170.2/v2",
    ],
)
def test_metadata_addresses_are_refused_without_a_request(url: str) -> None:
    dead, sleeps = MemoryDeadLetter(), []
    hook = _hook([WebhookTarget(url, kinds=frozenset({"ExecutionSucceeded"}))], dead, sleeps)
    hook.handle(_events())
    [record] = dead.records
    assert "link-local" in record["reason"]
    assert sleeps == []  # refused, never retried


def test_stepflow_own_endpoints_are_refused(server: Server) -> None:
    dead, sleeps = MemoryDeadLetter(), []
    own = server.url.replace("/hook", "/").replace("127.0.0.1", "localhost")
    hook = _hook(
        [WebhookTarget(server.url, kinds=frozenset({"ExecutionSucceeded"}))],
        dead,
        sleeps,
        denied=DeniedEndpoints([own]),
    )
    hook.handle(_events())
    assert server.seen == []
    assert "own AWS endpoints" in dead.records[0]["reason"]


def test_targets_filter_by_kind_and_state_machine(server: Server) -> None:
    dead, sleeps = MemoryDeadLetter(), []
    targets = [
        WebhookTarget(server.url + "?a", kinds=frozenset({"StateExited"})),
        WebhookTarget(server.url + "?b", state_machines=frozenset({"Orders"})),
        WebhookTarget(server.url + "?c", state_machines=frozenset({"Other"})),
    ]
    events = _events()
    _hook(targets, dead, sleeps).handle(events)
    assert len(server.seen) == 1 + len(events)


def test_hooks_from_settings_with_a_secret_arn_and_an_sqs_dead_letter(server: Server) -> None:
    boto3 = pytest.importorskip("boto3")
    from stepflow.aws.hooks_wiring import hooks_from_settings

    server.answer = lambda _: 502
    with pytest.MonkeyPatch.context() as env, offline_aws(env):
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        arn = secrets.create_secret(Name="hooks", SecretString=SECRET.decode())["ARN"]
        sqs = boto3.client("sqs", region_name="us-east-1")
        dlq = sqs.create_queue(QueueName="webhook-dlq")["QueueUrl"]
        hooks = hooks_from_settings(
            {
                "STEPFLOW_HOOKS": "metrics,webhooks",
                "STEPFLOW_WEBHOOK_URLS": server.url,
                "STEPFLOW_WEBHOOK_KINDS": "ExecutionSucceeded",
                "STEPFLOW_WEBHOOK_SECRET_ARN": arn,
                "STEPFLOW_WEBHOOK_DLQ_URL": dlq,
                "STEPFLOW_WEBHOOK_ATTEMPTS": "2",
            },
            {"secretsmanager": secrets, "sqs": sqs},
            local=True,
        )
        assert [h.name for h in hooks] == ["metrics", "webhooks"]
        webhooks = hooks[1]
        assert isinstance(webhooks, WebhookHook)
        webhooks._sleep = lambda _: None
        webhooks.handle(_events())
        headers, body = server.seen[0]
        stamp, delivery = headers[TIMESTAMP_HEADER], headers[DELIVERY_HEADER]
        assert verify(SECRET, stamp, delivery, body, headers[SIGNATURE_HEADER])
        assert len(server.seen) == 2
        [message] = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]
        assert json.loads(message["Body"])["deliveryId"] == headers[DELIVERY_HEADER]


def test_a_deployed_webhook_never_reaches_this_machine(server: Server) -> None:
    from stepflow.aws.hooks_wiring import hooks_from_settings

    dead = MemoryDeadLetter()
    [hook] = hooks_from_settings(
        {
            "STEPFLOW_HOOKS": "webhooks",
            "STEPFLOW_WEBHOOK_URLS": server.url,
            "STEPFLOW_WEBHOOK_SECRET": SECRET.decode(),
        },
        {},
        dead_letter=dead,
    )
    hook.handle(_events()[-1:])
    assert server.seen == []
    assert "this machine" in dead.records[0]["reason"]


def test_unknown_hook_names_are_refused() -> None:
    from stepflow.aws.hooks_wiring import hooks_from_settings

    with pytest.raises(ValueError, match="unknown hooks"):
        hooks_from_settings({"STEPFLOW_HOOKS": "metrics,pager"}, {})
    assert hooks_from_settings({"STEPFLOW_HOOKS": ""}, {}) == []


def test_a_dead_target_costs_one_round_of_retries_per_cooldown(server: Server) -> None:
    server.answer = lambda _: 503
    dead, sleeps = MemoryDeadLetter(), []
    events = _events()
    hook = _hook([WebhookTarget(server.url)], dead, sleeps, attempts=3)
    hook.handle(events)
    # the first event: 3 attempts; every later one: straight to the dead letter (target down)
    assert len(server.seen) == 3
    assert len(dead.records) == len(events)
    assert len(sleeps) == 2


def test_hooks_from_the_process_settings_read_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stepflow.aws.hooks_wiring import hooks_from_settings
    from stepflow.aws.settings import Settings

    monkeypatch.setenv("STEPFLOW_HOOKS", "metrics")
    settings = Settings.model_validate({"TABLE_NAME": "t"})
    [hook] = hooks_from_settings(settings, {"dynamodb": object(), "s3": object()})
    assert hook.name == "metrics"


def test_a_builtin_factory_builds_its_one_hook_whatever_the_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stepflow.aws.hooks_wiring import builtin_factory
    from stepflow.aws.settings import Settings

    monkeypatch.setenv("STEPFLOW_HOOKS", "metrics,eventbridge")
    settings = Settings.model_validate({"TABLE_NAME": "t"})
    clients = {"dynamodb": object(), "s3": object(), "events": object()}
    hook = builtin_factory("metrics")(settings, clients.__getitem__)
    assert hook.name == "metrics"
    assert builtin_factory("eventbridge")(settings, clients.__getitem__).name == "eventbridge"
