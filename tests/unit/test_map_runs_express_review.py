"""EXPRESS map runs stopped or failed with batches still queued (second reading of issue 14)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from stepflow.runtime import InMemoryBus, InMemoryLog
from stepflow.runtime.map_run_state import RunHead

from tests.unit.map_run_support import (
    KEY,
    MeteredLog,
    cancel_message,
    drain,
    finished,
    start_message,
    stepper,
)
from tests.unit.test_map_runs_express import express

__all__ = ["express"]


def cancel_first(s: Any, bus: InMemoryBus) -> None:
    """Deliver the parent's cancel before the queued batches (queues do not keep order)."""
    bus.send(cancel_message())
    cancels = [m for m in bus.receive_batch(10) if m.body.get("type") == "CancelMapRun"]
    s.handle_batch(cancels)
    for m in cancels:
        bus.ack(m)


def test_a_cancel_runs_no_batch_that_had_not_started(express: Counter[Any]) -> None:
    log, bus = MeteredLog(InMemoryLog()), InMemoryBus(0.0)
    s = stepper(log, bus)
    items = list(range(100))
    bus.send(start_message(items, execution_type="EXPRESS"))
    first = bus.receive_batch(1)
    s.handle_batch(first)  # the run starts four batches of 25 (queued)
    bus.ack(first[0])
    assert len(log.get(KEY).state["running"]) == 100
    cancel_first(s, bus)  # the parent was stopped before any batch ran
    assert finished(drain(s, bus)) == []
    assert express["batches"] == 0 and sum(express[i] for i in items) == 0
    head = RunHead.from_json(log.get(KEY).state)
    assert head.status == "ABORTED" and head.running == {}
    assert sum(head.done.values()) == 0  # none ran: none counted


def test_a_redrive_after_the_cancel_runs_every_item_once(express: Counter[Any]) -> None:
    log, bus = MeteredLog(InMemoryLog()), InMemoryBus(0.0)
    s = stepper(log, bus)
    items = list(range(60))
    bus.send(start_message(items, execution_type="EXPRESS"))
    first = bus.receive_batch(1)
    s.handle_batch(first)
    bus.ack(first[0])
    cancel_first(s, bus)
    drain(s, bus)
    bus.send(
        start_message(items, seq=7, parent_redrive=1, execution_type="EXPRESS")
    )  # the parent's redrive
    [done] = finished(drain(s, bus))
    assert done["status"] == "SUCCEEDED"
    assert done["output"] == [{"r": n} for n in items]
    assert all(express[i] == 1 for i in items)
