"""The cells seam: effects recorded once, replayed after a crash, non-determinism refused."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field
from stepflow.cells import (
    Cell,
    CellContext,
    CellModules,
    CellRegistry,
    CellRuntime,
    EffectCall,
    EffectHandlers,
    LogJournal,
)
from stepflow.cells.effects import Effect
from stepflow.runtime import InMemoryLog
from stepflow.testing import execute


class Step(BaseModel):
    n: int


class Bump(Effect[Step]):
    kind: Literal["bump"] = "bump"
    n: int


class Other(Effect[Step]):
    kind: Literal["other"] = "other"
    n: int


Effects = Annotated[Bump | Other, Field(discriminator="kind")]


class In(BaseModel):
    start: int


class Out(BaseModel):
    total: int


class Nope(BaseModel):
    why: str


class ThreeBumps(Cell[In, Out, Nope, Effects]):
    name = "three-bumps"

    def run(self, ctx: CellContext[Effects], data: In) -> Out:
        total = data.start
        for i in range(3):
            total += ctx.effect(Bump(n=i)).n
        return Out(total=total)


class Crash(BaseException):
    """A process dying mid-cell (no ``except Exception`` catches it)."""


def _runtime(calls: list[int], crash_at: int | None) -> tuple[CellRuntime, InMemoryLog]:
    def bump(effect: Bump, call: EffectCall) -> Step:
        if crash_at is not None and effect.n == crash_at:
            raise Crash
        calls.append(effect.n)
        return Step(n=effect.n + 10)

    handlers = EffectHandlers()
    handlers.register(Bump, bump)
    cells = CellRegistry()
    cells.register(ThreeBumps)
    log = InMemoryLog()
    return CellRuntime(cells, handlers, LogJournal(log)), log


BODY: dict[str, Any] = {
    "resource": "arn:aws:states:::stepflow:cell:three-bumps",
    "input": {"start": 1},
    "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:m:e",
    "state_name": "Bump",
    "task_id": "t1",
}


def test_a_crash_after_the_second_effect_replays_two_and_performs_the_third_once() -> None:
    calls: list[int] = []
    crashing, log = _runtime(calls, crash_at=2)
    with pytest.raises(Crash):
        crashing(BODY)
    assert calls == [0, 1]
    again = CellRuntime(crashing.cells, EffectHandlers(), LogJournal(log))
    again.handlers.register(Bump, lambda e, c: calls.append(e.n) or Step(n=e.n + 10))
    outcome = again(BODY)
    assert outcome.ok and outcome.output == {"total": 1 + 10 + 11 + 12}
    assert calls == [0, 1, 2]  # effects 0 and 1 zero more times, effect 2 exactly once
    assert [t["replayed"] for t in outcome.effects] == [True, True, False]


def test_a_changed_effect_order_is_non_deterministic() -> None:
    calls: list[int] = []
    runtime, _log = _runtime(calls, crash_at=None)
    assert runtime(BODY).ok

    class Changed(Cell[In, Out, Nope, Effects]):
        name = "three-bumps"
        version = "2.0.0"

        def run(self, ctx: CellContext[Effects], data: In) -> Out:
            ctx.effect(Bump(n=0))
            ctx.effect(Other(n=5))
            return Out(total=0)

    runtime.cells.register(Changed)
    # The execution keeps 1.0.0 for the unpinned reference: name the new version exactly.
    outcome = runtime({**BODY, "resource": f"{BODY['resource']}:2.0.0"})
    assert not outcome.ok and outcome.error == "StepFlow.Cell.NonDeterministic"
    assert calls == [0, 1, 2]


def test_cells_run_through_execute_in_memory_and_count_once() -> None:
    calls: list[int] = []

    def bump(effect: Bump, call: EffectCall) -> Step:
        calls.append(effect.n)
        return Step(n=effect.n)

    modules = CellModules(CellRegistry(), EffectHandlers())
    modules.cells.register(ThreeBumps)
    modules.handlers.register(Bump, bump)
    definition = {
        "StartAt": "Bump",
        "States": {
            "Bump": {
                "Type": "Task",
                "Resource": "arn:aws:states:::stepflow:cell:three-bumps",
                "End": True,
            }
        },
    }
    result = execute(definition, {"start": 5}, cells=modules)
    assert result.status == "SUCCEEDED", result.cause
    assert result.output == '{"total":8}'
    assert calls == [0, 1, 2]
