"""A redriven EXPRESS map run runs its failed items' cells again (in memory and on moto).

The items of an EXPRESS batch share the map run's ARN, so a cell's journal keys tell
them apart by the attempt id ``express/<redrive>/<index>/<task id>``. The redrive part
must be the run's generation at the time of the batch: with the count written once in
the run's config, a redriven item had the keys of its failed run and its journal
replayed the recorded failure without calling the handler, so it could never succeed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

import pytest
from pydantic import BaseModel
from stepflow.cells import (
    Cell,
    CellContext,
    CellModules,
    CellRegistry,
    EffectCall,
    EffectHandlers,
    HandlerError,
)
from stepflow.cells.effects import Effect
from stepflow.testing import open_environment

START = 1_700_000_000.0


class Bumped(BaseModel):
    n: int


class Bump(Effect[Bumped]):
    """Add 100 to ``n`` (the handler fails the first call for ``n == 2``)."""

    kind: Literal["bump"] = "bump"
    n: int


class In(BaseModel):
    start: int


class Out(BaseModel):
    total: int


class Nope(BaseModel):
    why: str


class OneBump(Cell[In, Out, Nope, Bump]):
    """One effect per run."""

    name = "one-bump"

    def run(self, ctx: CellContext[Bump], data: In) -> Out:
        return Out(total=ctx.effect(Bump(n=data.start)).n)


MACHINE: dict[str, Any] = {
    "StartAt": "M",
    "States": {
        "M": {
            "Type": "Map",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                "StartAt": "C",
                "States": {
                    "C": {
                        "Type": "Task",
                        "Resource": "arn:aws:states:::stepflow:cell:one-bump",
                        "End": True,
                    }
                },
            },
            "End": True,
        }
    },
}


@pytest.mark.parametrize("durable", ["memory", "moto"])
def test_a_redriven_express_item_calls_its_handler_again_and_only_it(durable: str) -> None:
    if durable == "moto":
        pytest.importorskip("moto")
    calls: Counter[int] = Counter()
    attempts: list[str] = []

    def bump(effect: Bump, call: EffectCall) -> Bumped:
        calls[effect.n] += 1
        attempts.append(call.key.attempt)
        if effect.n == 2 and calls[2] == 1:
            raise HandlerError("Flaky", "the first call fails")
        return Bumped(n=effect.n + 100)

    modules = CellModules(CellRegistry(), EffectHandlers())
    modules.cells.register(OneBump)
    modules.handlers.register(Bump, bump)
    with open_environment(durable, start_time=START, cells=modules) as env:
        arn = env.start(MACHINE, [{"start": 1}, {"start": 2}, {"start": 3}])
        env.run(arn)
        first = env.result(arn)
        assert first.status == "FAILED", first.cause
        assert calls == {1: 1, 2: 1, 3: 1}

        env.api.call("RedriveExecution", {"executionArn": arn})
        env.run(arn)
        result = env.result(arn)
        assert result.status == "SUCCEEDED", result.cause
        assert result.result == [{"total": 101}, {"total": 102}, {"total": 103}]
    # exactly one more call, for the failed item; none for the items that succeeded
    assert calls == {1: 1, 2: 2, 3: 1}
    assert sorted(attempts) == [
        "express/0/0/t1",
        "express/0/1/t1",
        "express/0/2/t1",
        "express/1/1/t1",
    ]
