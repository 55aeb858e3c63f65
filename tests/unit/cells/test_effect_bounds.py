"""The bounds of a cell's effects in the history: every field of the reports, and the event cap.

One attempt's reports travel with its result (a queue message, a lease record), so
their WHOLE JSON is bounded (:data:`REPORTS_BYTES`), names, tokens, errors and causes
included; what does not fit is counted in one ``StepFlowEffectsOmitted`` event. Effect
events never make the execution pass its event cap: they are recorded only while the
history is under it, the rest counted in that one event, and the cap counts only the
ordinary events. Handler calls are counted: every effect is performed once.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
from pydantic import BaseModel
from stepflow.cells import (
    Cell,
    CellContext,
    CellModules,
    CellRegistry,
    EffectCall,
    EffectFailure,
    EffectHandlers,
    HandlerError,
)
from stepflow.cells.effects import Effect
from stepflow.data.serialize import dumps, utf8_size
from stepflow.engine.effects import (
    DETAILS_KEY,
    MAX_EFFECT_EVENTS,
    NAME_CHARS,
    OMITTED,
    REPORTS_BYTES,
    effect_reports,
)
from stepflow.limits import Limits
from stepflow.testing import execute, open_environment

CELL = "arn:aws:states:::stepflow:cell:hostile"
LONG = "\x01é" * 20_000  # escaped in JSON: 6 bytes a character for the first, 2 for the second


class Done(BaseModel):
    n: int


class Poke(Effect[Done]):
    """One effect; the handler fails it with a long error and cause when ``fail``."""

    kind: Literal["poke"] = "poke"
    n: int
    fail: bool = False


class In(BaseModel):
    count: int
    fail: bool = False


class Out(BaseModel):
    done: int
    failed: int


class Nope(BaseModel):
    why: str


class Hostile(Cell[In, Out, Nope, Poke]):
    """Requests ``count`` effects, and goes on when one fails."""

    name = "hostile"

    def run(self, ctx: CellContext[Poke], data: In) -> Out:
        done = failed = 0
        for i in range(data.count):
            try:
                ctx.effect(Poke(n=i, fail=data.fail))
                done += 1
            except EffectFailure:
                failed += 1
        return Out(done=done, failed=failed)


class Counted:
    """The handler, counting its calls per effect."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def poke(self, effect: Poke, call: EffectCall) -> Done:
        self.calls.append(effect.n)
        if effect.fail:
            raise HandlerError("E" + LONG, LONG)
        return Done(n=effect.n)

    def modules(self) -> CellModules:
        modules = CellModules(CellRegistry(), EffectHandlers())
        modules.cells.register(Hostile)
        modules.handlers.register(Poke, self.poke)
        return modules


def machine() -> dict[str, Any]:
    return {"StartAt": "Work", "States": {"Work": {"Type": "Task", "Resource": CELL, "End": True}}}


def effect_events(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in history if e["type"].startswith("StepFlow")]


def shown_and_omitted(history: list[dict[str, Any]]) -> tuple[int, int]:
    events = effect_events(history)
    omitted = sum(e[DETAILS_KEY]["omitted"] for e in events if e["type"] == OMITTED)
    return sum(e["type"] != OMITTED for e in events), omitted


# --- the whole report is bounded ---------------------------------------------------------


def hostile_traces(count: int) -> list[dict[str, Any]]:
    return [
        {"index": i, "effect": LONG, "token": LONG, "scope": LONG, "ok": i % 2 == 0,
         "replayed": False, "result": LONG, "error": LONG, "cause": LONG, "cell": LONG,
         "compensation": {"effect": LONG, "request": {"x": LONG}}}
        for i in range(count)
    ]  # fmt: skip


@pytest.mark.parametrize("count", [1, 40, MAX_EFFECT_EVENTS + 3])
def test_every_field_of_the_reports_counts_towards_their_bound(count: int) -> None:
    reports = effect_reports(hostile_traces(count))
    assert utf8_size(dumps(list(reports))) <= REPORTS_BYTES
    shown = [r for r in reports if "omitted" not in r]
    omitted = reports[-1].get("omitted", 0)
    assert shown and len(shown) + omitted == count  # every effect shown or counted
    for report in shown:
        for key in ("effect", "token", "scope", "error", "cell", "compensation"):
            assert len(report.get(key, "")) <= NAME_CHARS, key
    assert effect_reports(list(reports)) == reports  # bounding again changes nothing


def test_ordinary_reports_are_not_cut_by_the_whole_bound() -> None:
    traces = [
        {"index": i, "effect": "Step", "token": "a" * 64, "ok": True, "result": {"n": i}}
        for i in range(MAX_EFFECT_EVENTS)
    ]
    reports = effect_reports(traces)
    assert len(reports) == MAX_EFFECT_EVENTS and all("output" in r for r in reports)


def test_hostile_errors_and_causes_of_many_effects_stay_within_the_bound() -> None:
    handlers = Counted()
    result = execute(machine(), {"count": 300, "fail": True}, cells=handlers.modules())
    assert result.status == "SUCCEEDED", result.cause
    assert result.result == {"done": 0, "failed": 300}
    assert handlers.calls == list(range(300))  # each performed once
    shown, omitted = shown_and_omitted(result.history)
    assert shown + omitted == 300 and omitted > 0
    details = [e[DETAILS_KEY] for e in effect_events(result.history)]
    assert utf8_size(dumps(details)) <= REPORTS_BYTES + 300 * len(',"cell":"hostile"')
    assert json.dumps(result.history, ensure_ascii=False).encode()


# --- effect events and the event cap -----------------------------------------------------


@pytest.mark.parametrize("durable", ["memory", "moto"])
def test_effects_past_the_history_cap_are_counted_and_the_execution_succeeds(
    durable: str,
) -> None:
    if durable == "moto":
        pytest.importorskip("moto")
    handlers = Counted()
    limits = Limits(max_events_per_execution=50)
    with open_environment(durable, cells=handlers.modules(), limits=limits) as env:
        arn = env.start(machine(), {"count": 200})
        env.run(arn)
        result = env.result(arn)
    assert result.status == "SUCCEEDED", result.cause
    assert result.result == {"done": 200, "failed": 0}
    assert handlers.calls == list(range(200))
    shown, omitted = shown_and_omitted(result.history)
    assert (shown, omitted) == (200 - omitted, 200 - shown) and shown > 0
    types = [e["type"] for e in result.history]
    assert types[-4:] == [OMITTED, "TaskSucceeded", "TaskStateExited", "ExecutionSucceeded"]
    assert len(result.history) - shown - 1 <= 50  # the cap counts the ordinary events
