"""Bounds on one JSONata evaluation through jsonata-python: depth, steps and time.

The library calls two hooks at every evaluation step (``__evaluate_entry`` and
``__evaluate_exit`` bindings): :class:`Guard` counts the depth and steps and checks the
time budget there. Two of the library's loops take no step per item (a range such as
``[1..1e7]`` materialised, an array checked against a function signature): they are
patched here to check the budget every :data:`STRIDE` items, through the guard of the
expression the thread is evaluating (:data:`CURRENT`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from jsonata.signature import Signature
from jsonata.utils import Utils

from stepflow.data.budget import Budget, BudgetExceeded, DecisionDeferred
from stepflow.data.jsonata_functions import BareError

MAX_DEPTH = 1000
"""Deepest nesting of JSONata evaluation before a stack-overflow error."""
MAX_STEPS = 2_000_000
"""Most JSONata evaluation steps one expression may take (an infinite-loop guard)."""

STACK_OVERFLOW = (
    "Stack overflow error: Check for non-terminating recursive function. "
    " Consider rewriting as tail-recursive."
)
TOO_LONG = "Expression evaluation timeout: Check for infinite loop"


class Interrupted(BareError):
    """Carries a budget signal through the library, which rewraps foreign exceptions."""

    def __init__(self, signal: BudgetExceeded | DecisionDeferred) -> None:
        super().__init__(str(signal))
        self.signal = signal


class Guard:
    """Per-evaluation bounds on nesting depth, steps and time, via the library's hooks.

    Every evaluation step checks the time budget, so ``$map`` over ten million
    items or a runaway recursion stops within one step of the deadline.
    """

    __slots__ = ("budget", "depth", "steps")

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.depth = 0
        self.steps = 0

    def reset(self) -> None:
        """A new expression starts: depth and steps from zero, and its time budget."""
        self.depth = 0
        self.steps = 0
        self.budget.start_expression()

    def enter(self, *_: Any) -> None:
        """The library's hook before each step: count it, check the time, depth and steps."""
        self.depth += 1
        self.steps += 1
        try:
            self.budget.check()
        except (BudgetExceeded, DecisionDeferred) as exc:
            raise Interrupted(exc) from None
        if self.depth > MAX_DEPTH:
            raise BareError(STACK_OVERFLOW)
        if self.steps > MAX_STEPS:
            raise BareError(TOO_LONG)

    def leave(self, *_: Any) -> None:
        """The library's hook after each step."""
        self.depth -= 1

    def tick(self) -> None:
        """A check from inside a library loop that has no evaluation step of its own."""
        try:
            self.budget.check()
        except (BudgetExceeded, DecisionDeferred) as exc:
            raise Interrupted(exc) from None


# --- budget checks inside the library's own loops ---------------------------
#
# Some library work runs per item without an evaluation step: materialising a
# range ([1..1e7] is ten million items) and checking each item of an array
# against a function signature. Both get a budget check every STRIDE items,
# through the guard of the expression this thread is evaluating.

CURRENT: ContextVar[Guard | None] = ContextVar("stepflow_jsonata_guard", default=None)
"""The guard of the expression this thread is evaluating (None between expressions)."""
STRIDE = 1 << 14
"""Items between two budget checks in the library's own loops."""
_original_get_symbol = Signature.get_symbol
_SYMBOLS = {str: "s", bool: "b", int: "n", float: "n", list: "a", dict: "o"}
_symbol_calls = 0


def _get_symbol(self: Any, value: Any) -> str:
    global _symbol_calls
    _symbol_calls += 1
    if not _symbol_calls % STRIDE:
        guard = CURRENT.get()
        if guard is not None:
            guard.tick()
    symbol = _SYMBOLS.get(type(value))  # exact types: a library subclass takes the long way
    return symbol if symbol is not None else str(_original_get_symbol(self, value))


def _range_items(self: Any) -> Iterator[int]:
    guard = CURRENT.get()
    start, stop = int(self.a), int(self.b)
    while start < stop:
        end = min(start + STRIDE, stop)
        yield from range(start, end)
        if guard is not None:
            guard.tick()
        start = end


Signature.get_symbol = _get_symbol
Utils.RangeList.__iter__ = _range_items
