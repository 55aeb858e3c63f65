"""A cells module for the cell-queue tests: a 3-effect cell whose handler counts its calls.

``stepflow worker --cells tests/worker/cells_module.py`` loads it in a worker
process: each performed effect appends ``<pid> <n> <idempotency token>`` to the
file ``CELLS_CALLS`` names, and the process dies (``os._exit``) when it is asked
for effect ``CELLS_CRASH_AT`` (a crash after the effects before it, before that
one happens). In-process tests register :class:`ThreeBumps` with their own handler.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import BaseModel, Field
from stepflow.cells import Cell, CellContext, EffectCall, handles
from stepflow.cells.effects import Effect


class Step(BaseModel):
    n: int


class Bump(Effect[Step]):
    kind: Literal["bump"] = "bump"
    n: int


Effects = Annotated[Bump, Field(discriminator="kind")]


class In(BaseModel):
    start: int


class Out(BaseModel):
    total: int


class Nope(BaseModel):
    why: str


class ThreeBumps(Cell[In, Out, Nope, Effects]):
    """Three effects, in order; the output adds their results."""

    name = "three-bumps"
    version = "1"

    def run(self, ctx: CellContext[Effects], data: In) -> Out:
        total = data.start
        for i in range(3):
            total += ctx.effect(Bump(n=i)).n
        return Out(total=total)


@handles(Bump)
def bump(effect: Bump, call: EffectCall) -> Step:
    """Count the call in the ``CELLS_CALLS`` file; die at ``CELLS_CRASH_AT``."""
    crash = os.environ.get("CELLS_CRASH_AT")
    if crash is not None and int(crash) == effect.n:
        os._exit(17)  # the process dies: no report, no release, no more heartbeats
    path = os.environ.get("CELLS_CALLS")
    if path:
        with open(path, "a", encoding="utf-8") as calls:
            calls.write(f"{os.getpid()} {effect.n} {call.key.token}\n")
    return Step(n=effect.n + 10)
