"""The order saga's cells: reserve stock, charge the card, ship; undone in reverse on failure.

Load it with ``--cells examples/saga/cells.py`` (``stepflow run``, ``stepflow
local``) or ``STEPFLOW_CELLS``; docs/cells.md walks through it. ``reserve-stock``
undoes itself with :meth:`ReserveStock.compensate` (a cell compensation);
``charge-card``'s effect :class:`ChargeCard` names its own undo,
:meth:`ChargeCard.compensation` (a per-effect compensation); ``ship`` fails with
``ShippingFailed`` when no courier serves the address. The cells only request
effects: the ``@handles`` functions at the end perform them against
:data:`SERVICES`, a small in-process inventory, payment and shipping service that
records every call (tests count them) and answers each idempotency key
(``call.key.token``) once, as a payment API does its ``Idempotency-Key``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from stepflow.cells import Cell, CellContext, EffectCall, EffectFailure, HandlerError, handles
from stepflow.cells.effects import Effect

T = TypeVar("T")

# --- the contracts: input, output and business error of each cell ------------------------


class Model(BaseModel):
    """The example's models refuse unknown fields."""

    model_config = ConfigDict(extra="forbid")


class Line(Model):
    """One line of an order."""

    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=1_000)
    price_cents: int = Field(ge=0, le=10_000_000)


class Address(Model):
    """Where the parcel goes."""

    name: str = Field(min_length=1, max_length=200)
    city: str = Field(min_length=1, max_length=200)
    country: str = Field(pattern=r"^[A-Z]{2}$")


class ReserveIn(Model):
    """reserve-stock's input."""

    order_id: str = Field(min_length=1, max_length=64)
    lines: list[Line] = Field(min_length=1, max_length=100)


class Reserved(Model):
    """reserve-stock's output: the hold to release if the order is undone, and the total."""

    hold_id: str
    total_cents: int


class OutOfStock(Model):
    """reserve-stock's business error."""

    error_name: ClassVar[str] = "OutOfStock"
    missing: list[str]


class ChargeIn(Model):
    """charge-card's input."""

    order_id: str = Field(min_length=1, max_length=64)
    card: str = Field(min_length=1, max_length=64)
    amount_cents: int = Field(gt=0, le=100_000_000)


class Charged(Model):
    """charge-card's output."""

    charge_id: str
    amount_cents: int


class PaymentDeclined(Model):
    """charge-card's business error."""

    error_name: ClassVar[str] = "PaymentDeclined"
    reason: str


class ShipIn(Model):
    """ship's input."""

    order_id: str = Field(min_length=1, max_length=64)
    hold_id: str
    address: Address


class Shipped(Model):
    """ship's output."""

    tracking_number: str


class CannotShip(Model):
    """ship's business error (a Catch matches ``ShippingFailed``)."""

    error_name: ClassVar[str] = "ShippingFailed"
    reason: str


# --- the effects: typed requests, each with its result type -------------------------------


class Hold(Model):
    """The inventory's answer to a hold: its id, or the SKUs it is short of."""

    hold_id: str | None
    missing: list[str] = []


class HoldStock(Effect[Hold]):
    """Hold every line of an order (all or nothing)."""

    kind: Literal["hold-stock"] = "hold-stock"
    order_id: str
    lines: tuple[Line, ...]


class Released(Model):
    """A released hold."""

    hold_id: str


class ReleaseStock(Effect[Released]):
    """Release a hold (reserve-stock's compensation)."""

    kind: Literal["release-stock"] = "release-stock"
    hold_id: str


InventoryEffect = Annotated[HoldStock | ReleaseStock, Field(discriminator="kind")]


class Charge(Model):
    """The payment service's answer to a charge."""

    charge_id: str
    approved: bool
    decline_reason: str | None = None


class Refund(Model):
    """A refunded charge."""

    refund_id: str
    charge_id: str


class RefundCharge(Effect[Refund]):
    """Refund a charge in full (the compensation :class:`ChargeCard` names)."""

    kind: Literal["refund-charge"] = "refund-charge"
    charge_id: str
    amount_cents: int


class ChargeCard(Effect[Charge]):
    """Charge a card; once approved, undone by refunding it."""

    kind: Literal["charge-card"] = "charge-card"
    order_id: str
    card: str
    amount_cents: int

    def compensation(self, result: Charge) -> RefundCharge | None:
        """Refund an approved charge; a declined one has nothing to undo."""
        if not result.approved:
            return None
        return RefundCharge(charge_id=result.charge_id, amount_cents=self.amount_cents)


PaymentEffect = Annotated[ChargeCard | RefundCharge, Field(discriminator="kind")]


class Shipment(Model):
    """A booked courier."""

    tracking_number: str


class CreateShipment(Effect[Shipment]):
    """Book a courier for an order's held stock."""

    kind: Literal["create-shipment"] = "create-shipment"
    order_id: str
    hold_id: str
    address: Address


ShippingEffect = Annotated[CreateShipment, Field(discriminator="kind")]


# --- the cells ------------------------------------------------------------------------------


class ReserveStock(Cell[ReserveIn, Reserved, OutOfStock, InventoryEffect]):
    """Hold the order's stock; undone by releasing the hold (a cell compensation)."""

    name = "reserve-stock"
    version = "1.0.0"

    def run(self, ctx: CellContext[InventoryEffect], data: ReserveIn) -> Reserved:
        """Hold every line, or fail with the SKUs that are short."""
        hold = ctx.effect(HoldStock(order_id=data.order_id, lines=tuple(data.lines)))
        if hold.hold_id is None:
            ctx.fail(OutOfStock(missing=hold.missing))
        total = sum(line.quantity * line.price_cents for line in data.lines)
        return Reserved(hold_id=hold.hold_id, total_cents=total)

    def compensate(
        self, ctx: CellContext[InventoryEffect], data: ReserveIn, output: Reserved
    ) -> None:
        """Release the hold this run made."""
        ctx.effect(ReleaseStock(hold_id=output.hold_id))


class ChargeCardCell(Cell[ChargeIn, Charged, PaymentDeclined, PaymentEffect]):
    """Charge the card; :meth:`ChargeCard.compensation` refunds it (a per-effect compensation)."""

    name = "charge-card"
    version = "1.0.0"

    def run(self, ctx: CellContext[PaymentEffect], data: ChargeIn) -> Charged:
        """Charge once; a declined card is the business error ``PaymentDeclined``."""
        charge = ctx.effect(
            ChargeCard(order_id=data.order_id, card=data.card, amount_cents=data.amount_cents)
        )
        if not charge.approved:
            ctx.fail(PaymentDeclined(reason=charge.decline_reason or "declined"))
        return Charged(charge_id=charge.charge_id, amount_cents=data.amount_cents)


class Ship(Cell[ShipIn, Shipped, CannotShip, ShippingEffect]):
    """Book the courier; an address no courier serves is ``ShippingFailed``."""

    name = "ship"
    version = "1.0.0"

    def run(self, ctx: CellContext[ShippingEffect], data: ShipIn) -> Shipped:
        """Book once; the shipping service's refusal becomes the business error."""
        try:
            shipment = ctx.effect(
                CreateShipment(order_id=data.order_id, hold_id=data.hold_id, address=data.address)
            )
        except EffectFailure as failure:
            if failure.error != NOT_SERVED:
                raise
            ctx.fail(CannotShip(reason=failure.cause))
        return Shipped(tracking_number=shipment.tracking_number)


# --- the in-process services the handlers call ----------------------------------------------

NOT_SERVED = "Shipping.AddressNotServed"
SERVED_COUNTRIES = frozenset({"CA", "DE", "FR", "GB", "NL", "US"})
DECLINED_CARDS = frozenset({"tok_declined"})
STOCK = {"book": 100, "lamp": 10, "mug": 50, "poster": 0}


@dataclass(frozen=True, slots=True)
class ServiceCall:
    """One call a handler made: the operation, its idempotency token and the id it acted on."""

    operation: str
    token: str
    subject: str


@dataclass
class Services:
    """An in-process inventory, payment and shipping service, idempotent per token.

    ``calls`` lists every call in order (a replayed effect makes none); ``stock``
    is what is on the shelf; ``holds``, ``charges``, ``refunds`` and ``shipments``
    what is in force.
    """

    stock: dict[str, int] = field(default_factory=lambda: dict(STOCK))
    holds: dict[str, dict[str, int]] = field(default_factory=dict)
    charges: dict[str, int] = field(default_factory=dict)
    refunds: dict[str, str] = field(default_factory=dict)
    shipments: dict[str, str] = field(default_factory=dict)
    calls: list[ServiceCall] = field(default_factory=list)
    answered: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def operations(self) -> list[str]:
        """The operations called, in order."""
        with self.lock:
            return [c.operation for c in self.calls]

    def reset(self) -> None:
        """Back to a full shelf and no calls."""
        with self.lock:
            fresh = Services()
            self.stock, self.holds, self.charges = fresh.stock, {}, {}
            self.refunds, self.shipments, self.calls, self.answered = {}, {}, [], {}


SERVICES = Services()
"""The services this module's handlers call (one per process; tests reset or count it)."""


def _once(call: EffectCall, operation: str, subject: str, perform: Callable[[str], T]) -> T:
    """Record the call; perform it unless its token was answered already (idempotency)."""
    token = call.key.token
    with SERVICES.lock:
        SERVICES.calls.append(ServiceCall(operation, token, subject))
        if token not in SERVICES.answered:
            SERVICES.answered[token] = perform(token)
        answer: T = SERVICES.answered[token]
        return answer


@handles(HoldStock)
def hold_stock(effect: HoldStock, call: EffectCall) -> Hold:
    """Hold every line, or none when one is short."""

    def perform(token: str) -> Hold:
        wanted: dict[str, int] = {}
        for line in effect.lines:
            wanted[line.sku] = wanted.get(line.sku, 0) + line.quantity
        missing = sorted(sku for sku, n in wanted.items() if SERVICES.stock.get(sku, 0) < n)
        if missing:
            return Hold(hold_id=None, missing=missing)
        for sku, n in wanted.items():
            SERVICES.stock[sku] -= n
        hold_id = f"hold-{token[:12]}"
        SERVICES.holds[hold_id] = wanted
        return Hold(hold_id=hold_id)

    return _once(call, "inventory.hold", effect.order_id, perform)


@handles(ReleaseStock)
def release_stock(effect: ReleaseStock, call: EffectCall) -> Released:
    """Put a hold's stock back on the shelf."""

    def perform(token: str) -> Released:
        for sku, n in SERVICES.holds.pop(effect.hold_id, {}).items():
            SERVICES.stock[sku] = SERVICES.stock.get(sku, 0) + n
        return Released(hold_id=effect.hold_id)

    return _once(call, "inventory.release", effect.hold_id, perform)


@handles(ChargeCard)
def charge_card(effect: ChargeCard, call: EffectCall) -> Charge:
    """Charge the card (``tok_declined`` is declined)."""

    def perform(token: str) -> Charge:
        charge_id = f"ch-{token[:12]}"
        if effect.card in DECLINED_CARDS:
            return Charge(charge_id=charge_id, approved=False, decline_reason="card declined")
        SERVICES.charges[charge_id] = effect.amount_cents
        return Charge(charge_id=charge_id, approved=True)

    return _once(call, "payments.charge", effect.order_id, perform)


@handles(RefundCharge)
def refund_charge(effect: RefundCharge, call: EffectCall) -> Refund:
    """Refund a charge in full."""

    def perform(token: str) -> Refund:
        if effect.charge_id not in SERVICES.charges:
            raise HandlerError("Payments.UnknownCharge", f"no charge {effect.charge_id}")
        refund_id = f"re-{token[:12]}"
        SERVICES.refunds[refund_id] = effect.charge_id
        return Refund(refund_id=refund_id, charge_id=effect.charge_id)

    return _once(call, "payments.refund", effect.charge_id, perform)


@handles(CreateShipment)
def create_shipment(effect: CreateShipment, call: EffectCall) -> Shipment:
    """Book a courier; no courier serves a country outside :data:`SERVED_COUNTRIES`."""

    def perform(token: str) -> Shipment:
        if effect.address.country not in SERVED_COUNTRIES:
            raise HandlerError(NOT_SERVED, f"no courier serves {effect.address.country}")
        tracking = f"trk-{token[:12]}"
        SERVICES.shipments[tracking] = effect.order_id
        return Shipment(tracking_number=tracking)

    return _once(call, "shipping.create", effect.order_id, perform)
