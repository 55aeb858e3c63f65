"""The package's cells: the single-file module's, under another name."""

from __future__ import annotations

from pydantic import BaseModel
from stepflow.cells import Cell, CellContext


class Ping(BaseModel):
    n: int


class Echo(Cell[Ping, Ping, Ping, None]):
    name = "echo"
    version = "2.1"

    def run(self, ctx: CellContext[None], data: Ping) -> Ping:
        return data
