"""The context a cell runs in: ``ctx.effect(...)`` requests an effect, recorded or replayed.

Effects are numbered in the order the cell requests them. For each, the
journal is read first: a recorded result is returned (a recorded failure is
raised again) without calling the handler; only an effect with no record is
performed and its result recorded. A record of another effect type or request
at that index means the cell is not deterministic: it fails with
``StepFlow.Cell.NonDeterministic`` instead of performing anything more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, NoReturn, Protocol, TypeVar

from pydantic import BaseModel

from stepflow.cells.effects import Effect, IdempotencyKey
from stepflow.cells.handlers import CircuitOpenFailure, EffectCall, EffectFailure, EffectHandlers
from stepflow.cells.journal import EffectJournal, EffectRecord
from stepflow.cells.model import BusinessError, EffT
from stepflow.runtime.clients import TaskClients

R = TypeVar("R")

NON_DETERMINISTIC = "StepFlow.Cell.NonDeterministic"
UNDECLARED_EFFECT = "StepFlow.Cell.UndeclaredEffect"


class RunRefused(Exception):
    """The run must fail with :attr:`error` and ``cause``, whatever the cell does with it."""

    error = "StepFlow.Cell.Refused"

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class NonDeterministicError(RunRefused):
    """A re-run requested a different effect than the one recorded at that index."""

    error = NON_DETERMINISTIC


class EffectWatch(Protocol):
    """Told about a run's effects (the saga registers their compensations: cells/saga.py)."""

    def before(self, ctx: CellContext[Any], request: Effect[Any]) -> None:
        """``request`` is about to be performed (not replayed); raise to refuse it."""

    def recorded(self, ctx: CellContext[Any], trace: EffectTrace) -> None:
        """``trace`` (performed or replayed) names a compensation; its record is stored.

        A success names ``compensation(result)``; a failure that may have happened
        (``performed`` yes or unknown) names ``compensation_unknown()``.
        """


class UndeclaredEffectError(Exception):
    """A cell requested an effect that is not in its declared effect union."""

    error = UNDECLARED_EFFECT

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


@dataclass(frozen=True, slots=True)
class EffectTrace:
    """One effect as this run saw it: performed or replayed, and how it ended.

    The history and metrics are made from these (see :mod:`stepflow.cells.runner`).
    """

    index: int
    effect: str
    token: str
    replayed: bool
    ok: bool
    result: Any = None
    error: str | None = None
    cause: str | None = None
    scope: str = "run"
    compensation: dict[str, Any] | None = None
    """The effect that undoes this one (``{"effect", "request", "type"}``), if it names one."""
    outcome: str | None = None
    """A failure that may have happened anyway: ``"unknown"`` (sent, no answer) or
    ``"performed"`` (its result unusable); None otherwise."""


@dataclass(slots=True)
class CellContext(Generic[EffT]):
    """What a running cell sees: its identity and :meth:`effect`.

    ``declared`` are the effect classes the cell may request (None: any effect).
    """

    cell: str
    execution_arn: str
    state_name: str
    attempt: str
    journal: EffectJournal
    handlers: EffectHandlers
    declared: tuple[type[Any], ...] | None = None
    task: dict[str, Any] = field(default_factory=dict)
    clients: TaskClients | None = None
    scope: str = "run"
    watch: EffectWatch | None = None
    traces: list[EffectTrace] = field(default_factory=list)
    _next: int = 0
    stopped: BaseException | None = None
    """Set once the run cannot go on, whatever the cell does with the exception it got:
    a :class:`NonDeterministicError` (the task fails with it), an error of the journal
    itself or an open circuit breaker (the runner raises it, so the same attempt is
    delivered again under the same keys instead of a Retry performing the effect again
    under new ones)."""

    def key(self, index: int) -> IdempotencyKey:
        """The idempotency key of the effect at ``index``."""
        return IdempotencyKey(self.execution_arn, self.state_name, self.attempt, index, self.scope)

    def effect(self, request: Effect[R]) -> R:
        """Perform ``request`` once (or replay its recorded result) and return its result.

        Raises :class:`~stepflow.cells.handlers.EffectFailure` when the effect failed
        (now or when it was recorded), which the cell may catch.
        """
        if self.stopped is not None:  # a cell that swallowed it gets it again
            raise self.stopped
        index = self._next
        self._next += 1
        name = request.effect_name()
        if self.declared is not None and not isinstance(request, self.declared):
            allowed = ", ".join(sorted(k.__name__ for k in self.declared)) or "none"
            raise UndeclaredEffectError(
                f"Cell {self.cell} requested effect {name}, which is not one of its declared "
                f"effects ({allowed})."
            )
        key = self.key(index)
        digest = request.digest()
        record = self._journal(lambda: self.journal.recorded(key))
        replayed = record is not None
        if record is not None:
            if record.effect != name or record.digest != digest:
                self.stopped = NonDeterministicError(
                    f"Cell {self.cell} is not deterministic: effect #{index} was recorded as "
                    f"{record.effect} (request {record.digest[:12]}) and is now requested as "
                    f"{name} (request {digest[:12]}). Effects must be requested in the same "
                    "order with the same arguments on every run of an attempt."
                )
                raise self.stopped
        else:
            watch = self.watch
            if watch is not None and _names_compensation(request):
                self._guard(lambda: watch.before(self, request))
            call = EffectCall(key, self.task, self.clients)
            try:
                result = self.handlers.perform(request, call)
            except CircuitOpenFailure as refused:  # not performed: not recorded, run again
                self.stopped = refused
                raise
            except EffectFailure as failure:
                record = EffectRecord(
                    name, digest, False, None, failure.error, failure.cause, failure.performed
                )
            else:
                record = EffectRecord(name, digest, True, result)
            stored = record
            record = self._journal(lambda: self.journal.record(key, stored))
        assert record is not None
        return self._settle(request, key, record, replayed)

    def _journal(self, operation: Callable[[], EffectRecord | None]) -> EffectRecord | None:
        return self._guard(operation)

    def _guard(self, operation: Callable[[], R]) -> R:
        """``operation()``; its failure stops the run (the cell cannot swallow it)."""
        try:
            return operation()
        except Exception as exc:
            self.stopped = exc
            raise

    def check_complete(self) -> None:
        """After a run: a record past the last effect requested means the run requested fewer.

        Only a run that replayed its last effect (or requested none) can have one: a
        performed effect was the first with no record. Sets :attr:`stopped`.
        """
        if self.stopped is not None or (self.traces and not self.traces[-1].replayed):
            return
        key = self.key(self._next)
        if self._journal(lambda: self.journal.recorded(key)) is not None:
            self.stopped = NonDeterministicError(
                f"Cell {self.cell} is not deterministic: it requested {self._next} effect(s), "
                f"fewer than the ones recorded for this attempt (#{self._next} was recorded)."
            )

    def _settle(
        self, request: Effect[R], key: IdempotencyKey, record: EffectRecord, replayed: bool
    ) -> R:
        name = request.effect_name()
        compensation: dict[str, Any] | None = None
        undo: Effect[Any] | None = None
        if record.ok:
            value: R = type(request).parse_result(record.result)
            undo = request.compensation(value)
        elif record.may_have_happened:
            undo = request.compensation_unknown()
        if undo is not None:
            compensation = {
                "effect": undo.effect_name(),
                "type": f"{type(undo).__module__}.{type(undo).__qualname__}",
                "request": undo.request(),
            }
        outcome = OUTCOMES.get(record.performed) if record.may_have_happened else None
        trace = EffectTrace(
            key.index, name, key.token, replayed, record.ok, record.result,
            record.error, record.cause, self.scope, compensation, outcome,
        )  # fmt: skip
        self.traces.append(trace)
        watch = self.watch
        if watch is not None and compensation is not None:
            # registered as soon as recorded: a run that never finishes is still undone
            self._guard(lambda: watch.recorded(self, trace))
        if not record.ok:
            raise EffectFailure(
                name,
                record.error or "StepFlow.Cell.EffectFailed",
                record.cause or "",
                record.performed,
            )
        return value

    def fail(self, error: BaseModel) -> NoReturn:
        """End the cell with its declared business error ``error`` (Catch matches its name)."""
        raise BusinessError(error)


OUTCOMES = {"unknown": "unknown", "yes": "performed"}
"""A failure's ``performed`` as its trace's (and history event's) ``outcome``."""


def _names_compensation(request: Effect[Any]) -> bool:
    """True when ``request``'s type may name a compensation.

    It overrides :meth:`Effect.compensation` or :meth:`Effect.compensation_unknown`.
    """
    kind = type(request)
    return (
        kind.compensation is not Effect.compensation
        or kind.compensation_unknown is not Effect.compensation_unknown
    )
