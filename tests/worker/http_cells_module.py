"""A cells module for the worker tests: one cell that performs the built-in :class:`HttpRequest`.

It registers no handler of its own: a worker must bring the built-in one.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field
from stepflow.cells import Cell, CellContext
from stepflow.cells.builtin import HttpRequest

Effects = Annotated[HttpRequest, Field(discriminator="kind")]


class Url(BaseModel):
    url: str


class Status(BaseModel):
    status: int
    body: str


class Nope(BaseModel):
    why: str


class Fetch(Cell[Url, Status, Nope, Effects]):
    """GET the input's URL once; its status and body."""

    name = "fetch"
    version = "1"

    def run(self, ctx: CellContext[Effects], data: Url) -> Status:
        response = ctx.effect(HttpRequest(method="POST", url=data.url, body="x"))
        return Status(status=response.status, body=response.body)
