"""One task attempt makes one service call: Retry is the workflow's, not botocore's.

botocore retries a failed call on its own (legacy mode: five attempts on a 5xx,
a throttle, a connection error or a read timeout). For a publish, a send or a
putEvents that is not idempotent, an answer lost after the service acted is a
duplicate message per extra attempt, and a Retry on top multiplies them. Every
task client is built with one attempt (role_clients.TASK_CLIENT_CONFIG; Lambda's
lambda_.LAMBDA_CONFIG). This test counts the requests one sns:publish task
attempt sends to an endpoint that answers 500.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import botocore.endpoint
import pytest
from stepflow.aws.role_clients import RoleClients

from tests.moto_env import REGION
from tests.unit.integrations.helpers import body, invoker


@pytest.fixture
def failing_endpoint() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            hits.append(self.path)
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def test_one_publish_attempt_sends_one_request(
    failing_endpoint: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, hits = failing_endpoint
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_RETRY_MODE", "legacy")
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    monkeypatch.setattr(botocore.endpoint.time, "sleep", lambda _seconds: None)  # no backoff
    clients = RoleClients(assume_roles=False, region=REGION, endpoint_url=url)
    topic = "arn:aws:sns:us-east-1:123456789012:orders"
    outcome = invoker(clients)(
        body("arn:aws:states:::sns:publish", {"TopicArn": topic, "Message": "m"})
    )
    assert not outcome.ok
    assert len(hits) == 1, f"{len(hits)} Publish requests for one task attempt"
