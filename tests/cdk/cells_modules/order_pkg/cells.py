"""The package's cells: one cell whose one effect its handler performs (+1)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel
from stepflow.cells import Cell, CellContext, EffectCall, handles
from stepflow.cells.effects import Effect


class Ping(BaseModel):
    n: int


class Bump(Effect[Ping]):
    kind: Literal["bump"] = "bump"
    n: int


class Echo(Cell[Ping, Ping, Ping, Bump]):
    name = "echo"
    version = "2.1"

    def run(self, ctx: CellContext[Bump], data: Ping) -> Ping:
        return ctx.effect(Bump(n=data.n))


@handles(Bump)
def bump(effect: Bump, call: EffectCall) -> Ping:
    return Ping(n=effect.n + 1)
