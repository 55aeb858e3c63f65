"""Time budgets for evaluation: how long one expression and one decision may run.

The engine reads no clock. A :class:`Budget` is handed to it by the driver
(the stepper builds a :class:`ClockBudget` for each decision, see
:func:`deployed_budgets`; tests pass a fake that runs out after a number of checks), and the
evaluators call :meth:`Budget.check` often: per JSONata evaluation step (so
per item of ``$map``/``$filter``/``$reduce`` and per recursive call), per
Choice rule, per template, intrinsic call and Map item, per state entered.

Running out raises :class:`BudgetExceeded`, a ``States.Runtime`` error whose
cause names the budget (``expression budget of 1 s exceeded``). The JSONata
evaluator reports an exhausted *expression* budget as
``States.QueryEvaluationError`` instead (catchable, as any query failure);
an exhausted *decision* budget always fails the execution.

A driver may also give a budget a shorter *deferral* deadline (the API's
inline first decision): past it :class:`DecisionDeferred` is raised, which is
not an execution error at all: the driver drops the decision and leaves it to
the stepper behind the queue.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from stepflow.errors import StatesError, StatesErrorName
from stepflow.limits import Limits


class Budget(Protocol):
    """What evaluation asks of a time budget."""

    def start_expression(self) -> None:
        """An expression (JSONata expression, template, Choice state, intrinsic) starts."""
        ...

    def check(self) -> None:
        """Raise :class:`BudgetExceeded` (or :class:`DecisionDeferred`) once time is up."""
        ...


class BudgetExceeded(StatesError):
    """A budget ran out: ``which`` is ``expression`` or ``decision``."""

    def __init__(self, which: str, seconds: float) -> None:
        cause = f"{which} budget of {_seconds(seconds)} s exceeded"
        super().__init__(StatesErrorName.RUNTIME, cause)
        self.which = which
        self.seconds = seconds


class DecisionDeferred(Exception):
    """The driver's deferral deadline passed: abandon this decision, the queue will redo it."""


class Unlimited:
    """A budget that never runs out (pure engine calls, tools, benchmarks of the engine)."""

    __slots__ = ()

    def start_expression(self) -> None:
        """Nothing to reset."""

    def check(self) -> None:
        """Never raises."""

    def start_state(self) -> None:
        """Nothing to reset."""


UNLIMITED = Unlimited()
"""The budget of a decision that was given none."""


class ClockBudget:
    """Deadlines read from injected clocks (seconds).

    The decision deadline is fixed when the budget is created, on ``clock``
    (monotonic wall time in a deployment: it must fit in the Lambda's
    timeout); each :meth:`start_expression` sets a new expression deadline on
    ``expression_clock`` (default ``clock``; the evaluating thread's CPU time in
    a deployment, so that an expression is not charged for the time other
    threads held the GIL or the machine was busy elsewhere). ``defer_seconds``,
    when set, is an earlier deadline for the whole decision past which
    :class:`DecisionDeferred` is raised instead of failing anything. ``every``
    reads the clock on one check in that many (for a clock slower to read than
    the work between two checks, such as a thread's CPU time); then
    :meth:`start_expression` reads no clock either: the new expression's
    deadline is set on the next check that reads it (at most ``every`` checks
    later, the same slack as the sampling's own). ``gate``, a clock cheap to read
    that advances at least as fast as both (a monotonic wall clock: a thread is
    given at most one CPU second a second), spares the slow ones further: a sampled
    check reads them only once ``gate`` has advanced ``gate_seconds`` since they were
    last read, so no deadline is noticed more than ``gate_seconds`` late (a thread's
    CPU time costs 0.5-2 us to read, some 5-10 % of a transition's time in memory).
    The gate must be monotonic: a reading behind its last one reads the slow clocks.
    """

    __slots__ = (
        "_checks",
        "_clock",
        "_decision_at",
        "_defer_at",
        "_every",
        "_expression_at",
        "_expression_clock",
        "_gate",
        "_gate_read",
        "_gate_seconds",
        "decision_seconds",
        "expression_seconds",
    )

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        expression_seconds: float,
        decision_seconds: float,
        defer_seconds: float | None = None,
        every: int = 1,
        expression_clock: Callable[[], float] | None = None,
        gate: Callable[[], float] | None = None,
        gate_seconds: float = 0.001,
    ) -> None:
        self._clock = clock
        self._gate = gate
        self._gate_seconds = gate_seconds
        self._gate_read = 0.0 if gate is None else gate()  # when the slow clocks were read
        self._expression_clock = clock if expression_clock is None else expression_clock
        self._every = max(1, every)
        self._checks = self._every  # checks until the next one that reads the clocks
        self.expression_seconds = expression_seconds
        self.decision_seconds = decision_seconds
        start = clock()
        self._decision_at = start + decision_seconds
        self._expression_at: float | None = None  # with every > 1: set by the first sample
        if self._every == 1:
            expression_start = (
                start if self._expression_clock is clock else self._expression_clock()
            )
            self._expression_at = expression_start + expression_seconds
        self._defer_at = None if defer_seconds is None else start + defer_seconds

    def start_expression(self) -> None:
        """Give the next expression its whole budget."""
        if self._every > 1:  # a slow clock (a thread's CPU time): read on the next sampled check
            self._expression_at = None
        else:
            self._expression_at = self._expression_clock() + self.expression_seconds

    def start_state(self) -> None:
        """:meth:`start_expression` then :meth:`check`, in one call (the engine's, per state)."""
        if self._every > 1:
            self._expression_at = None
        else:
            self._expression_at = self._expression_clock() + self.expression_seconds
        self._checks -= 1
        if not self._checks:
            self._sample()

    def check(self) -> None:
        """Raise once a deadline has passed (deferral first, then decision, then expression)."""
        self._checks -= 1  # a countdown to the next sampled check (the hot path: one test)
        if not self._checks:
            self._sample()

    def _sample(self) -> None:
        """The check that reads the clocks (one in ``every``, and not before ``gate`` allows)."""
        self._checks = self._every
        if self._gate is not None:
            gate = self._gate()
            if self._gate_read <= gate < self._gate_read + self._gate_seconds:
                return  # (a reading out of that range, a gate gone backwards, reads them)
            self._gate_read = gate
            now = gate if self._gate is self._clock else self._clock()
        else:
            now = self._clock()
        if self._defer_at is not None and now > self._defer_at:
            raise DecisionDeferred
        if now > self._decision_at:
            raise BudgetExceeded("decision", self.decision_seconds)
        expression_now = now if self._expression_clock is self._clock else self._expression_clock()
        if self._expression_at is None:
            self._expression_at = expression_now + self.expression_seconds
        elif expression_now > self._expression_at:
            raise BudgetExceeded("expression", self.expression_seconds)


def clock_budgets(
    limits: Limits,
    clock: Callable[[], float],
    *,
    defer_seconds: float | None = None,
    every: int = 1,
    expression_clock: Callable[[], float] | None = None,
    gate: Callable[[], float] | None = None,
) -> Callable[[], ClockBudget]:
    """A factory of one fresh :class:`ClockBudget` per decision, from ``limits``."""

    def make() -> ClockBudget:
        return ClockBudget(
            clock,
            expression_seconds=limits.expression_budget_seconds,
            decision_seconds=limits.decision_budget_seconds,
            defer_seconds=defer_seconds,
            every=every,
            expression_clock=expression_clock,
            gate=gate,
        )

    return make


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def deployed_budgets(
    limits: Limits,
    wall: Callable[[], float],
    cpu: Callable[[], float],
    *,
    defer_seconds: float | None = None,
) -> Callable[[], ClockBudget]:
    """The budgets of a deployment: decisions on ``wall`` time, expressions on ``cpu`` time.

    ``wall`` is a monotonic clock (a decision must fit in the stepper Lambda's
    timeout); ``cpu`` the evaluating thread's CPU time, slower to read, so the
    clocks are read on one check in 8, and then only once ``wall`` (the gate) has
    advanced a millisecond since they were last read.
    """
    return clock_budgets(
        limits, wall, defer_seconds=defer_seconds, every=8, expression_clock=cpu, gate=wall
    )
