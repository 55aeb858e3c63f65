"""Handlers for end-to-end Map tests that count their calls per item.

``work`` counts each call under ``(tag, index)``, fails the indexes listed in
``FAILING`` and returns ``{"i", "sq"}``; ``slow`` is ``work`` after half a second (so
that a stop finds iterations running). ``calls(tag)`` is a tag's count per index: a
test tells once from twice with it. ``count_task_sends`` records what goes to a stack's
tasks queue.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

import pytest
from stepflow.local import LocalStack

from tests.e2e.waiting import wait_for

ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"
FN = "arn:aws:lambda:us-east-1:000000000000:function:"
CALLS: Counter[tuple[str, int]] = Counter()
FAILING: set[int] = set()
LOCK = threading.Lock()


class ItemFailed(Exception):
    """The error a failing item raises."""


def work(payload: Any) -> Any:
    """Count the call; fail an item listed in FAILING; echo the item's index and square."""
    with LOCK:
        CALLS[(str(payload.get("tag")), int(payload["i"]))] += 1
        failing = int(payload["i"]) in FAILING
    if failing:
        raise ItemFailed(f"item {payload['i']}")
    return {"i": payload["i"], "sq": payload["i"] * payload["i"]}


def slow(payload: Any) -> Any:
    """Like ``work``, taking a while."""
    time.sleep(0.5)
    return work(payload)


def calls(tag: str) -> Counter[int]:
    """The calls of ``tag``'s items, per index."""
    with LOCK:
        return Counter({i: n for (t, i), n in CALLS.items() if t == tag})


def failed_run(
    sfn: Any, machine: str, count: int, failing: set[int], error: str = "ItemFailed"
) -> str:
    """Start ``machine`` on ``count`` items, ``failing`` of them failing; its ARN once FAILED.

    The items fail only for this run: ``FAILING`` is cleared when it has ended, and so
    have the children of its map runs (if listed). A child the failed run stopped may
    still call its Lambda before the stop reaches it: a failing item must fail then too
    (cleared at the parent's end, item 8 of a distributed Map once succeeded so).
    """
    with LOCK:
        FAILING.update(failing)
    try:
        items = [{"n": i} for i in range(count)]
        started = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"items": items}))
        described = wait_for(sfn, started["executionArn"], timeout=60)
        assert (described["status"], described["error"]) == ("FAILED", error), described
        _children_ended(sfn, str(started["executionArn"]))
    finally:
        with LOCK:
            FAILING.clear()
    return str(started["executionArn"])


def _children_ended(sfn: Any, execution: str, timeout: float = 60.0) -> None:
    """Wait until no child of ``execution``'s map runs is running."""
    deadline = time.monotonic() + timeout
    for run in sfn.list_map_runs(executionArn=execution)["mapRuns"]:
        while True:
            listed = sfn.list_executions(mapRunArn=run["mapRunArn"], maxResults=1000)
            if all(child["status"] != "RUNNING" for child in listed["executions"]):
                break
            assert time.monotonic() < deadline, run["mapRunArn"]
            time.sleep(0.1)


def count_task_sends(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The messages sent to stepflow local's tasks queue from now on (the bus wrapped)."""
    bus = stack.wiring.tasks_bus
    assert bus is not None
    return count_sends(bus, monkeypatch)


def count_sends(bus: Any, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The messages sent on ``bus`` from now on (its ``send`` and ``send_batch`` wrapped)."""
    sent: list[Any] = []
    send, send_batch = bus.send, getattr(bus, "send_batch", None)

    def one(message: Any, delay_seconds: int = 0) -> None:
        send(message, delay_seconds)
        sent.append(message)

    def batch(messages: Any) -> None:
        assert send_batch is not None
        send_batch(messages)
        sent.extend(m for m, _ in messages)

    monkeypatch.setattr(bus, "send", one)
    if send_batch is not None:
        monkeypatch.setattr(bus, "send_batch", batch)
    return sent
