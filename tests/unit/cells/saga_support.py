"""An order saga for the saga tests: reserve stock, charge the card, ship; counted handlers.

``reserve-stock`` undoes itself (:meth:`Cell.compensate` releases the hold);
``charge-card``'s effect names its own compensation (a refund). ``Shop`` holds
the handlers and records every call, so tests count them and their order.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
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

COMPENSATE = "arn:aws:states:::stepflow:saga:compensate"


class Crash(BaseException):
    """A process dying mid-task (no ``except Exception`` catches it)."""


class Hold(BaseModel):
    hold_id: str


class Charge(BaseModel):
    charge_id: str


class Done(BaseModel):
    ok: bool = True


class HoldStock(Effect[Hold]):
    kind: Literal["hold"] = "hold"
    sku: str
    quantity: int


class ReleaseStock(Effect[Done]):
    kind: Literal["release"] = "release"
    hold_id: str


class RefundCard(Effect[Done]):
    kind: Literal["refund"] = "refund"
    charge_id: str
    amount: int


class ChargeCard(Effect[Charge]):
    kind: Literal["charge"] = "charge"
    amount: int

    def compensation(self, result: Charge) -> Effect[Any] | None:
        return RefundCard(charge_id=result.charge_id, amount=self.amount)


class ShipParcel(Effect[Done]):
    kind: Literal["ship"] = "ship"
    sku: str


Inventory = Annotated[HoldStock | ReleaseStock, Field(discriminator="kind")]
Payments = Annotated[ChargeCard, Field(discriminator="kind")]
Shipping = Annotated[ShipParcel, Field(discriminator="kind")]


class Order(BaseModel):
    sku: str = "sku-1"
    quantity: int = 1
    amount: int = 100


class Reserved(BaseModel):
    hold_id: str


class Charged(BaseModel):
    charge_id: str


class Shipped(BaseModel):
    shipped: bool


class OrderError(BaseModel):
    why: str


class ReserveStock(Cell[Order, Reserved, OrderError, Inventory]):
    name = "reserve-stock"
    version = "1.0.0"

    def run(self, ctx: CellContext[Inventory], data: Order) -> Reserved:
        hold = ctx.effect(HoldStock(sku=data.sku, quantity=data.quantity))
        return Reserved(hold_id=hold.hold_id)

    def compensate(self, ctx: CellContext[Inventory], data: Order, output: Reserved) -> None:
        ctx.effect(ReleaseStock(hold_id=output.hold_id))


class ChargeCardCell(Cell[Order, Charged, OrderError, Payments]):
    name = "charge-card"
    version = "1.0.0"

    def run(self, ctx: CellContext[Payments], data: Order) -> Charged:
        charge = ctx.effect(ChargeCard(amount=data.amount))
        return Charged(charge_id=charge.charge_id)


class ShipOrder(Cell[Order, Shipped, OrderError, Shipping]):
    name = "ship"
    version = "1.0.0"

    def run(self, ctx: CellContext[Shipping], data: Order) -> Shipped:
        ctx.effect(ShipParcel(sku=data.sku))
        return Shipped(shipped=True)


class Shop:
    """The inventory, payments and shipping services: every handler call recorded in order.

    ``fail`` holds effect kinds (``kind`` or ``kind:detail``) whose handler fails
    (``HandlerError``) that many times; ``crash`` those whose handler raises :class:`Crash`
    that many times (recording nothing). ``details`` are the calls as ``kind:detail``,
    ``tokens`` the idempotency keys each call was given.
    """

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.details: list[str] = []
        self.tokens: list[str] = []
        self.fail: dict[str, int] = {}
        self.crash: dict[str, int] = {}

    def _call(self, kind: str, call: EffectCall, detail: str = "") -> None:
        keys = (kind, f"{kind}:{detail}")
        for key in keys:
            if self.crash.get(key, 0) > 0:
                self.crash[key] -= 1
                raise Crash
        self.calls.append(kind)
        self.details.append(f"{kind}:{detail}")
        self.tokens.append(call.key.token)
        for key in keys:
            if self.fail.get(key, 0) > 0:
                self.fail[key] -= 1
                raise HandlerError(f"{kind.title()}Unavailable", f"the {kind} service is down")

    def hold(self, effect: HoldStock, call: EffectCall) -> Hold:
        self._call("hold", call, effect.sku)
        return Hold(hold_id=f"h-{effect.sku}")

    def release(self, effect: ReleaseStock, call: EffectCall) -> Done:
        self._call("release", call, effect.hold_id)
        return Done()

    def charge(self, effect: ChargeCard, call: EffectCall) -> Charge:
        self._call("charge", call, str(effect.amount))
        return Charge(charge_id=f"c-{effect.amount}")

    def refund(self, effect: RefundCard, call: EffectCall) -> Done:
        self._call("refund", call, effect.charge_id)
        return Done()

    def ship(self, effect: ShipParcel, call: EffectCall) -> Done:
        self._call("ship", call, effect.sku)
        return Done()

    def modules(self, *extra: Any) -> CellModules:
        """The three cells (and ``extra`` cells) with this shop's handlers."""
        modules = CellModules(CellRegistry(), EffectHandlers())
        for cell in (ReserveStock, ChargeCardCell, ShipOrder, *extra):
            modules.cells.register(cell)
        handlers = modules.handlers
        handlers.register(HoldStock, self.hold)
        handlers.register(ReleaseStock, self.release)
        handlers.register(ChargeCard, self.charge)
        handlers.register(RefundCard, self.refund)
        handlers.register(ShipParcel, self.ship)
        return modules


def cell_task(name: str, then: str, **extra: Any) -> dict[str, Any]:
    """A Task state running cell ``name``, its result kept at ``$.<name>``."""
    return {
        "Type": "Task",
        "Resource": f"arn:aws:states:::stepflow:cell:{name}:1",
        "ResultPath": f"$.{name.replace('-', '_')}",
        "Next": then,
        **extra,
    }


def order_saga(*, compensations: int = 1, retry: bool = False) -> dict[str, Any]:
    """Reserve, charge, ship; a failed Ship is caught: compensate (``compensations`` x), fail."""
    states: dict[str, Any] = {
        "Reserve": cell_task("reserve-stock", "Charge"),
        "Charge": cell_task("charge-card", "Ship"),
        "Ship": cell_task(
            "ship",
            "Shipped",
            Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Undo1"}],
        ),
        "Shipped": {"Type": "Succeed"},
        "Failed": {"Type": "Fail", "Error": "OrderFailed", "Cause": "compensated"},
    }
    for n in range(1, compensations + 1):
        undo: dict[str, Any] = {
            "Type": "Task",
            "Resource": COMPENSATE,
            "ResultPath": f"$.undo{n}",
            "Next": f"Undo{n + 1}" if n < compensations else "Failed",
        }
        if retry:
            undo["Retry"] = [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1}]
        states[f"Undo{n}"] = undo
    return {"StartAt": "Reserve", "States": states}


def task_outputs(history: list[dict[str, Any]], state: str) -> list[Any]:
    """The outputs of the successful Task attempts of ``state`` (parsed JSON), in order."""
    import json

    outputs: list[Any] = []
    current = ""
    for event in history:
        if event["type"] == "TaskStateEntered":
            current = event["stateEnteredEventDetails"]["name"]
        if event["type"] == "TaskSucceeded" and current == state:
            outputs.append(json.loads(event["taskSucceededEventDetails"]["output"]))
    return outputs
