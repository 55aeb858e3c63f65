"""A cells module the CDK tests ship: one cell with one effect and its handler."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel
from stepflow.cells import Cell, CellContext, EffectCall, handles
from stepflow.cells.effects import Effect


class Reserved(BaseModel):
    reservation: str


class Reserve(Effect[Reserved]):
    kind: Literal["reserve"] = "reserve"
    sku: str


class Order(BaseModel):
    sku: str


class Receipt(BaseModel):
    reservation: str


class OutOfStock(BaseModel):
    sku: str


class ReserveStock(Cell[Order, Receipt, OutOfStock, Reserve]):
    name = "reserve-stock"
    version = "1.0"

    def run(self, ctx: CellContext[Reserve], data: Order) -> Receipt:
        return Receipt(reservation=ctx.effect(Reserve(sku=data.sku)).reservation)


@handles(Reserve)
def reserve(effect: Reserve, call: EffectCall) -> Reserved:
    return Reserved(reservation=f"r-{effect.sku}-{call.key.token[:8]}")
