"""EXPRESS map runs: batches dispatched to ``stepflow.runtime.express.run_batch``.

These tests put a stand-in with ``run_batch``'s exact signature and result type
in its place (where :mod:`stepflow.runtime.map_express` calls it), and count what
the coordinator asks of it: every item run to its end once, parked and unreached items re-armed,
results in order, no result in any head.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields
from typing import Any

import pytest
from stepflow.runtime import InMemoryBus, InMemoryLog, map_express

from tests.unit.map_run_support import KEY, MeteredLog, drain, finished, start_message, stepper


@dataclass(frozen=True)
class ItemResult:
    index: int
    status: str
    output: Any = None
    error: str | None = None
    cause: str | None = None
    start_date: float | None = None
    stop_date: float | None = None
    resume: dict[str, Any] | None = None
    wake_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ItemResult:
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})


@pytest.fixture
def express(monkeypatch: pytest.MonkeyPatch) -> Counter[Any]:
    """A stand-in ``run_batch``; counts items run to their end."""
    ran: Counter[Any] = Counter()
    calls = Counter[str]()

    def run_batch(definition: Any, machine: str, inputs: Any, **kw: Any) -> list[ItemResult]:
        calls["batches"] += 1
        now = kw["clock"]()
        out = []
        for item in inputs:
            if isinstance(item, ItemResult):  # resumed: finishes now
                ran[item.index] += 1
                out.append(ItemResult(item.index, "SUCCEEDED", item.resume, None, None, 1.0, now))
                continue
            index, value = item
            if value == "park":
                out.append(ItemResult(index, "PENDING", resume={"p": index}, wake_at=now + 30))
            elif value == "late" and calls[f"late{index}"] == 0:
                calls[f"late{index}"] += 1
                out.append(ItemResult(index, "NOT_RUN"))
            elif value == "bad":
                ran[index] += 1
                out.append(ItemResult(index, "FAILED", None, "Boom", "bad item", now, now))
            else:
                ran[index] += 1
                out.append(ItemResult(index, "SUCCEEDED", {"r": value}, None, None, now, now))
        return out

    monkeypatch.setattr(map_express, "run_batch", run_batch)
    monkeypatch.setattr(map_express, "ItemResult", ItemResult)
    ran["batches"] = 0
    return ran


def test_an_express_run_runs_every_item_once_in_batches(express: Counter[Any]) -> None:
    log, bus = MeteredLog(InMemoryLog()), InMemoryBus(0.0)
    s = stepper(log, bus)
    items: list[Any] = [*range(100), "park", "late", 7]
    bus.send(start_message(items, execution_type="EXPRESS", tolerated_count=0))
    [done] = finished(drain(s, bus))
    assert done["status"] == "SUCCEEDED"
    assert done["output"] == [{"r": n} for n in range(100)] + [{"p": 100}, {"r": "late"}, {"r": 7}]
    assert all(express[i] == 1 for i in range(103))  # each item ran to its end once
    assert log.get(KEY).state["done"]["SUCCEEDED"] == 103
    children = [k for k in log.writes if ":execution:" in k and "#" not in k]
    assert children == []  # no durable execution per item
    assert log.writes[KEY] <= 20
    assert len(repr(log.get(KEY).state)) < 2000


def test_express_failures_and_redelivered_batches(express: Counter[Any]) -> None:
    import random

    log, bus = MeteredLog(InMemoryLog()), InMemoryBus(0.0)
    s = stepper(log, bus)
    items: list[Any] = [1, "bad", 3, 4, 5, 6]
    bus.send(start_message(items, execution_type="EXPRESS", tolerated_count=1))
    [done] = finished(drain(s, bus, random.Random(3)))
    assert done["status"] == "SUCCEEDED"
    assert done["output"][1] == {"Error": "Boom", "Cause": "bad item"}
    assert all(express[i] == 1 for i in range(6))  # redeliveries re-send the report only
