"""The built-in webhooks hook through ``stepflow local``: the stack's stream poller feeds it,
each execution's end is POSTed once, signed with the shared secret (HMAC-SHA256).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from unittest import mock

import pytest
from stepflow.local import LocalStack

ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"
SECRET = "test-webhook-secret"
PATIENCE = 60.0
"""How long the test waits for deliveries (never asserted as a timing)."""


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    got: list[tuple[dict[str, str], bytes]] = []

    class Receive(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            got.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Receive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    finally:
        server.shutdown()


def test_each_execution_end_is_delivered_once_and_signed(
    receiver: tuple[str, list[tuple[dict[str, str], bytes]]],
) -> None:
    url, got = receiver
    environment = {
        "STEPFLOW_WEBHOOK_URLS": url,
        "STEPFLOW_WEBHOOK_SECRET": SECRET,
        "STEPFLOW_WEBHOOK_KINDS": "ExecutionSucceeded,ExecutionFailed",
    }
    machine_definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    with (
        mock.patch.dict("os.environ", environment),
        LocalStack(port=0, hook_names="webhooks") as stack,
    ):
        sfn = stack.stepfunctions()
        machine = sfn.create_state_machine(
            name="webhooked", definition=json.dumps(machine_definition), roleArn=ROLE
        )["stateMachineArn"]
        arns = [
            sfn.start_execution(stateMachineArn=machine, name=f"w-{i}", input="{}")["executionArn"]
            for i in range(3)
        ]
        deadline = time.monotonic() + PATIENCE
        while len(got) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # a repeat, if any, would arrive now
    assert len(got) == 3
    deliveries = sorted(headers["x-stepflow-delivery"] for headers, _ in got)
    assert [d.rsplit("#", 1)[0] for d in deliveries] == sorted(arns)
    for headers, body in got:
        assert headers["x-stepflow-event"] == "ExecutionSucceeded"
        stamp, delivery = headers["x-stepflow-timestamp"], headers["x-stepflow-delivery"]
        signed = f"{stamp}.{delivery}.".encode() + body
        expected = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
        assert headers["x-stepflow-signature"] == f"v1={expected}"
