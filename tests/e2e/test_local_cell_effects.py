"""Over ``stepflow local`` with boto3: a cell's built-in effects, guarded as tasks are.

A cell Task started through boto3 performs an HTTP effect against a local
server (one request, with the ``Idempotency-Key`` of its effect) and a
DynamoDB effect on a user's table (one PutItem, counted). The same effects
aimed at the stack's own endpoints (its API, moto) and resources (its table,
its transition queue) fail the execution and nothing reaches them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field
from stepflow.cells import Cell, CellContext
from stepflow.cells.builtin import DynamoPutItem, HttpRequest, SqsSendMessage
from stepflow.local import LocalStack
from stepflow.local.stack import TABLE
from stepflow.runtime.targets import OWN_TARGET_CAUSE

from tests.e2e.waiting import wait_for

ROLE = "arn:aws:iam::123456789012:role/stepflow/OrdersRole"


class Probe(BaseModel):
    kind: Literal["http", "put", "send"]
    target: str
    reverse: bool = False
    """The target is spelled backwards: the input names no resource, the cell computes it
    (so the task guard, which scans a Task's input, cannot see it; the effect guard must)."""


class Done(BaseModel):
    status: int = 0


class Nope(BaseModel):
    why: str


Effects = Annotated[HttpRequest | DynamoPutItem | SqsSendMessage, Field(discriminator="kind")]


class EffectProbe(Cell[Probe, Done, Nope, Effects]):
    """Performs the one effect its input names."""

    name = "effect-probe"

    def run(self, ctx: CellContext[Effects], data: Probe) -> Done:
        target = data.target[::-1] if data.reverse else data.target
        if data.kind == "http":
            return Done(status=ctx.effect(HttpRequest(method="POST", url=target)).status)
        if data.kind == "put":
            ctx.effect(DynamoPutItem(table=target, item={"id": {"S": "o-1"}}))
        else:
            ctx.effect(SqsSendMessage(queue_url=target, message_body="forged"))
        return Done()


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0) as running:
        assert running.wiring is not None
        running.wiring.cell_runtime.cells.register(EffectProbe)
        yield running


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(dict(self.headers.items()))
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/orders", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def run(stack: LocalStack, name: str, probe: dict[str, Any]) -> dict[str, Any]:
    sfn = stack.stepfunctions()
    state = {"Type": "Task", "Resource": "arn:aws:states:::stepflow:cell:effect-probe"}
    definition = {"StartAt": "T", "States": {"T": {**state, "End": True}}}
    machine = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)
    execution = sfn.start_execution(
        stateMachineArn=machine["stateMachineArn"], input=json.dumps(probe)
    )
    return wait_for(sfn, execution["executionArn"])


def test_an_http_effect_reaches_a_server_once_with_its_key(
    stack: LocalStack, server: tuple[str, list[dict[str, str]]]
) -> None:
    url, seen = server
    done = run(stack, "http-effect", {"kind": "http", "target": url})
    assert done["status"] == "SUCCEEDED", done
    assert json.loads(done["output"]) == {"status": 201}
    assert len(seen) == 1 and len(seen[0]["Idempotency-Key"]) == 64


def test_http_effects_never_reach_the_stacks_own_endpoints(stack: LocalStack) -> None:
    for i, target in enumerate((stack.url, stack.aws_endpoint)):
        probe = {"kind": "http", "target": f"{target}/"[::-1], "reverse": True}
        done = run(stack, f"http-own-{i}", probe)
        assert done["status"] == "FAILED"
        assert done["error"] == "StepFlow.Effect.Http.Refused", done


def test_a_dynamodb_effect_writes_a_users_table_and_never_the_stacks(
    stack: LocalStack,
) -> None:
    dynamodb = stack.client("dynamodb")
    dynamodb.create_table(
        TableName="cell-effect-orders",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    done = run(stack, "put-effect", {"kind": "put", "target": "cell-effect-orders"})
    assert done["status"] == "SUCCEEDED", done
    items = dynamodb.scan(TableName="cell-effect-orders")["Items"]
    assert items == [{"id": {"S": "o-1"}}]
    own = run(stack, "put-own", {"kind": "put", "target": TABLE[::-1], "reverse": True})
    assert own["status"] == "FAILED" and own["error"] == "States.Runtime"
    assert OWN_TARGET_CAUSE in own["cause"]


def test_an_sqs_effect_never_sends_to_the_stacks_queue(stack: LocalStack) -> None:
    assert stack.wiring is not None
    queue = stack.wiring.settings.queue_url
    done = run(stack, "send-own", {"kind": "send", "target": queue[::-1], "reverse": True})
    assert done["status"] == "FAILED" and done["error"] == "States.Runtime"
    assert OWN_TARGET_CAUSE in done["cause"]
