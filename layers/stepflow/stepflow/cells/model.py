"""Cells: typed units of business logic, declared as classes.

::

    class ReserveStock(Cell[ReserveIn, Reserved, OutOfStock, InventoryEffect]):
        name = "reserve-stock"
        version = "1.0.0"

        def run(self, ctx: CellContext[InventoryEffect], data: ReserveIn) -> Reserved:
            hold = ctx.effect(HoldStock(sku=data.sku, quantity=data.quantity))
            if not hold.held:
                ctx.fail(OutOfStock(sku=data.sku))
            return Reserved(hold_id=hold.hold_id)

The four type parameters are the input, output and business-error pydantic
models and the effect union. A cell is a Task resource
``arn:aws:states:::stepflow:cell:<name>[:<version>]``. Its ``run`` is
deterministic apart from its effects: run again after a crash, it receives the
recorded results of the effects it already requested.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, NoReturn, TypeVar

from pydantic import BaseModel

if typing.TYPE_CHECKING:
    from stepflow.cells.context import CellContext

InT = TypeVar("InT", bound=BaseModel)
OutT = TypeVar("OutT", bound=BaseModel)
ErrT = TypeVar("ErrT", bound=BaseModel)
EffT = TypeVar("EffT")

NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,79}$")
"""A cell's name: what may follow ``stepflow:cell:`` (no ``:`` or ``@``)."""

VERSION = re.compile(r"^(0|[1-9][0-9]{0,5})(\.(0|[1-9][0-9]{0,5})){0,2}$")
"""A cell's version: ``MAJOR[.MINOR[.PATCH]]``."""


class BusinessError(Exception):
    """A cell's declared business error, raised by :meth:`CellContext.fail`.

    The task fails with ``error`` (the model's ``error_name`` class attribute,
    else its class name) and ``cause`` (the model as JSON), so a Catch can
    match the error by name.
    """

    def __init__(self, detail: BaseModel) -> None:
        self.detail = detail
        self.error = str(getattr(type(detail), "error_name", None) or type(detail).__name__)
        self.cause = detail.model_dump_json()
        super().__init__(f"{self.error}: {self.cause}")


@dataclass(frozen=True, slots=True)
class Contract:
    """A cell's declared types: input, output, business error, and effect union."""

    input: type[BaseModel]
    output: type[BaseModel]
    error: Any
    effects: Any


class Cell(Generic[InT, OutT, ErrT, EffT]):
    """Base class of cells: set ``name`` (and ``version``), implement :meth:`run`.

    Override :meth:`compensate` to undo a completed run (a saga step); an
    effect may also name its own compensation (:meth:`Effect.compensation`).
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1.0.0"

    def run(self, ctx: CellContext[EffT], data: InT) -> OutT:
        """The cell's logic: request effects through ``ctx``, return the output."""
        raise NotImplementedError

    def compensate(self, ctx: CellContext[EffT], data: InT, output: OutT) -> None:
        """Undo a completed run by requesting effects through ``ctx`` (default: nothing)."""
        return None

    @classmethod
    def compensates(cls) -> bool:
        """True when the cell overrides :meth:`compensate`."""
        return cls.compensate is not Cell.compensate

    @classmethod
    def key(cls) -> str:
        """``name@version``."""
        return f"{cls.name}@{cls.version}"

    @classmethod
    def contract(cls) -> Contract:
        """The four types the cell was declared with.

        Raises TypeError when the class does not parametrize :class:`Cell`.
        """
        for klass in cls.__mro__:
            for base in getattr(klass, "__orig_bases__", ()):
                if typing.get_origin(base) is Cell:
                    args = typing.get_args(base)
                    if len(args) == 4 and all(not isinstance(a, TypeVar) for a in args):
                        return Contract(args[0], args[1], args[2], args[3])
        raise TypeError(
            f"{cls.__name__} must subclass Cell[Input, Output, Error, Effects] with concrete types"
        )


def fail(detail: BaseModel) -> NoReturn:
    """Raise the business error ``detail`` (what :meth:`CellContext.fail` does)."""
    raise BusinessError(detail)
