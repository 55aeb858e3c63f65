"""Task messages over SQS's limit on the routes beside the activity router.

``stepflow.testing`` runs an activity task near the payload limit as it did before the
offload (its queues are in memory, so it offloads to an in-memory store), and a cell task
routed to a cell queue is offloaded as an activity task is.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from stepflow.cells.queues import CellQueues, CellRouter, envelope
from stepflow.runtime import Message
from stepflow.runtime.offload import OFFLOADED, resolve
from stepflow.runtime.payloads import InMemoryPayloadStore
from stepflow.runtime.signing import MessageSigner
from stepflow.runtime.wire import MAX_MESSAGE_BYTES, encode_wire
from stepflow.testing import execute

ACTIVITY = "arn:aws:states:us-east-1:123456789012:activity:review"
ARN = "arn:aws:states:us-east-1:123456789012:execution:M:e1"


def test_the_testing_environment_runs_an_activity_task_just_under_the_payload_limit() -> None:
    machine = {"StartAt": "R", "States": {"R": {"Type": "Task", "Resource": ACTIVITY, "End": True}}}
    calls: list[int] = []

    def review(doc: dict[str, Any]) -> dict[str, bool]:
        calls.append(len(doc["blob"]))
        return {"ok": True}

    # an input under the 256 KiB payload limit, over SQS's limit with the task's envelope
    result = execute(machine, {"blob": "x" * 262_000}, handlers={ACTIVITY: review})
    assert (result.status, calls) == ("SUCCEEDED", [262_000])


class RecordingQueue:
    """A task queue that keeps what is sent (every queue exists)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send(self, name: str, body: dict[str, Any], delay_seconds: int = 0) -> None:
        self.sent.append((name, body))

    def create(self, name: str, tags: dict[str, str]) -> None:
        raise AssertionError("every queue exists")


def _cell_task(blob: str) -> Message:
    body = {
        "resource": "arn:aws:states:::stepflow:cell:pay",
        "task_id": "t1",
        "state_name": "Pay",
        "input": {"blob": blob},
    }
    return Message(ARN, ARN + "#2#0", "task", body)


def _route(blob: str) -> tuple[dict[str, Any], Message, InMemoryPayloadStore, MessageSigner]:
    queue, store, signer = RecordingQueue(), InMemoryPayloadStore(), MessageSigner.random()
    bus = type("Bus", (), {"payloads": store})()
    router = CellRouter(CellQueues.parse("*=work"), queue, signer=signer, bus=bus)  # type: ignore[arg-type]
    message = _cell_task(blob)
    router.dispatch(message)
    (sent,) = queue.sent
    wrapped = replace(message, body={**message.body, "input": envelope(message)})
    return sent[1], wrapped, store, signer


def test_a_cell_task_over_sqs_limit_goes_to_its_queue_as_a_reference() -> None:
    body, wrapped, store, signer = _route("x" * 261_800)
    # THEN the queue gets a reference SQS takes, the task is stored once, and it resolves whole
    assert OFFLOADED in body["body"] and len(encode_wire(body).encode()) < MAX_MESSAGE_BYTES
    assert store.puts == 1
    assert resolve(body, signer, store) == wrapped


def test_a_small_cell_task_goes_inline_and_stores_nothing() -> None:
    body, wrapped, store, signer = _route("x" * 100)
    assert store.puts == 0 and resolve(body, signer, store) == wrapped
