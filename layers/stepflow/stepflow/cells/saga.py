"""Sagas: compensating completed cells in reverse order (``stepflow:saga:compensate``).

A run registers what it needs undone in the saga record (:mod:`stepflow.cells.saga_log`)
of its execution (or EXPRESS item): each effect whose
:meth:`~stepflow.cells.Effect.compensation` names an effect, as soon as the effect is
recorded (:class:`SagaWatch`: a run that never finishes is still undone; the record's
room is checked before such an effect runs), and, in :func:`after_run`, the run itself
when the cell succeeded and overrides :meth:`~stepflow.cells.Cell.compensate`. Each
entry carries the task's frame (its Parallel branches and Map iterations). A run with
nothing to undo reads and writes nothing.

The Task ``arn:aws:states:::stepflow:saga:compensate`` (:func:`compensate`),
typically reached from a Catch, seals its frame, then runs the compensations of its
frame and the frames nested in it not run yet, newest first, each claimed first
(another live claim fails the task with ``StepFlow.Saga.Busy``). Each runs in a
:class:`~stepflow.cells.CellContext` whose scope is ``compensate:<entry id>``, so its
effects are journaled and replayed after a crash (and fenced like the cells' own);
once it finished, a done-marker is written and no later compensate task runs it
again. A compensation that fails fails the task with its error; a Retry of the state
runs the compensations not done, from that one on. A run scheduled before a
compensate of its frame that registers after it has its compensations run at once.
See docs/cells-sagas.md.
"""

from __future__ import annotations

import time
import typing
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from pydantic import BaseModel, ValidationError

from stepflow.cells.context import (
    CellContext,
    EffectTrace,
    RunRefused,
    UndeclaredEffectError,
)
from stepflow.cells.effects import Effect
from stepflow.cells.handlers import EffectFailure
from stepflow.cells.journal import LogJournal
from stepflow.cells.model import BusinessError
from stepflow.cells.registry import CellNotFoundError, version_key
from stepflow.cells.runner import attempt_of, effect_classes, with_traces
from stepflow.cells.saga_log import (
    INVALID_ENTRY,
    CompensationJournal,
    SagaEntry,
    SagaLog,
    saga_partition,
)
from stepflow.engine.resources import describe
from stepflow.errors import StatesErrorName
from stepflow.runtime.leases import LeaseLog
from stepflow.runtime.outcome import TaskOutcome

if typing.TYPE_CHECKING:
    from stepflow.cells.registry import AnyCell
    from stepflow.cells.runner import CellRuntime

BUSY = "StepFlow.Saga.Busy"
"""Another compensate task holds a live claim on a compensation this one must run (retriable)."""

CLAIM_SECONDS = 300.0
"""How long a compensate task without ``TimeoutSeconds`` holds its claim on a compensation."""

UNKNOWN_EFFECT = "StepFlow.Saga.UnknownEffect"
"""A recorded compensating effect whose type the runtime does not know."""

_MAX_CAUSE = 32_768


class SagaWatch:
    """Registers each compensation an effect names as soon as the effect is recorded.

    So a run that never finishes (its process died and the attempt was given up)
    still has the effects it performed undone. Before performing an effect whose
    type may name a compensation, the saga record's room is checked
    (:class:`~stepflow.cells.saga_log.SagaLimitError` refuses the effect); once the
    effect happened its entry is always added, even past the limits.
    """

    def __init__(self, runtime: CellRuntime, body: dict[str, Any]) -> None:
        self.runtime = runtime
        self.frame = str(body.get("frame") or "")
        self._saga: SagaLog | None = None
        self.failure: TaskOutcome | None = None
        """The failure of a compensation run at once (its entry stays for a later compensate)."""

    def saga(self, ctx: CellContext[Any]) -> SagaLog:
        """The saga the run registers in (its log resolved on first use)."""
        if self._saga is None:
            log = _lease_log(self.runtime)
            self._saga = SagaLog(log, ctx.execution_arn, saga_partition(ctx.attempt))
        return self._saga

    def before(self, ctx: CellContext[Any], request: Effect[Any]) -> None:
        """Refuse ``request`` when the saga record has no room for its compensation."""
        self.saga(ctx).room()

    def recorded(self, ctx: CellContext[Any], trace: EffectTrace) -> None:
        """Register ``trace``'s compensation (once: a replay adds nothing)."""
        undo = trace.compensation or {}
        entry = SagaEntry(
            "effect", ctx.cell, ctx.attempt, ctx.state_name, index=trace.index,
            effect=str(undo.get("effect")), type=str(undo.get("type")),
            request=dict(undo.get("request") or {}), frame=self.frame,
        )  # fmt: skip
        saga = self.saga(ctx)
        late = saga.add([entry], bounded=False)
        if late:  # compensated already: undo this effect now
            _, _, failure = run_compensations(self.runtime, saga, late, ctx.attempt, ctx.task)
            self.failure = self.failure or failure


def after_run(
    runtime: CellRuntime,
    cell: AnyCell,
    ctx: CellContext[Any],
    data: BaseModel,
    outcome: TaskOutcome,
) -> TaskOutcome | None:
    """Register the run itself when it succeeded and its cell overrides ``compensate``.

    (Its effects' compensations were registered as they were recorded: :class:`SagaWatch`.)
    Returns None, or the outcome that replaces the run's when the saga record
    cannot hold more (``StepFlow.Saga.LimitExceeded``).
    """
    watch = ctx.watch if isinstance(ctx.watch, SagaWatch) else None
    if not (outcome.ok and cell.compensates()):
        return None if watch is None else watch.failure
    entry = SagaEntry(
        "cell", ctx.cell, ctx.attempt, ctx.state_name, input=data.model_dump(mode="json"),
        output=outcome.output, frame="" if watch is None else watch.frame,
    )  # fmt: skip
    saga = SagaLog(_lease_log(runtime), ctx.execution_arn, saga_partition(ctx.attempt))
    try:
        late = saga.add([entry])
    except RunRefused as exc:  # full, or a damaged record: refuse to add to it
        return TaskOutcome.failed(exc.error, exc.cause[:_MAX_CAUSE])
    failure = None if watch is None else watch.failure
    if late:  # a compensate of its frame ran while it did: undo it now
        _, _, failure = run_compensations(runtime, saga, late, ctx.attempt, ctx.task)
    return failure


def compensate(runtime: CellRuntime, body: dict[str, Any]) -> TaskOutcome:
    """Run the compensations of the execution's completed cells not run yet, newest first.

    The output is ``{"compensated": [{"cell", "attempt", "effects"}, ...]}`` in the
    order run; ``effects`` of the outcome are the compensations' effect traces.
    The task's input is not read (it takes no parameters).
    """
    pattern = describe(str(body.get("resource", ""))).pattern
    if pattern != "request-response":
        return TaskOutcome.failed(
            StatesErrorName.RUNTIME,
            f"stepflow:saga:compensate runs as a request-response task only, not {pattern}.",
        )
    arn = str(body.get("execution_arn", ""))
    attempt = attempt_of(body)  # a message naming no execution or attempt is refused
    saga = SagaLog(_lease_log(runtime), arn, saga_partition(attempt))
    frame = str(body.get("frame") or "")
    try:
        entries = saga.seal(frame, attempt)
    except RunRefused as exc:
        return TaskOutcome.failed(exc.error, exc.cause[:_MAX_CAUSE])
    mine = [entry for entry in entries if entry.within(frame)]
    compensated, traces, failure = run_compensations(runtime, saga, mine, attempt, body)
    if failure is not None:
        return with_traces(failure, traces)
    return with_traces(TaskOutcome.succeeded({"compensated": compensated}), traces)


def run_compensations(
    runtime: CellRuntime,
    saga: SagaLog,
    entries: list[SagaEntry],
    owner: str,
    body: dict[str, Any],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], TaskOutcome | None]:
    """Run the compensations of ``entries`` not done yet, newest first, each claimed by ``owner``.

    Returns what was compensated, the compensations' effect traces, and the failure
    that stopped it (a compensation's error, or ``StepFlow.Saga.Busy``), if any.
    """
    journal = CompensationJournal(saga.log, _fence(runtime))
    compensated: list[dict[str, Any]] = []
    traces: list[dict[str, Any]] = []
    seconds = _claim_seconds(body)
    kinds = known_effects(runtime) if any(e.kind != "cell" for e in entries) else {}
    for entry in reversed(entries):
        if saga.done(entry):
            continue
        held = saga.claim(entry, owner, time.time(), seconds)
        if held is not None:
            if saga.done(entry):  # the other task finished it meanwhile
                continue
            busy = TaskOutcome.failed(
                BUSY,
                f"The compensation of {entry.cell} (state {entry.state}, attempt "
                f"{entry.attempt}) is being run by compensate task {held.owner} (claimed "
                f"until {held.until:.0f}). Retry on {BUSY} to resume after it.",
            )
            return compensated, traces, busy
        ctx: CellContext[Any] = CellContext(
            cell=entry.cell,
            execution_arn=saga.execution_arn,
            state_name=entry.state,
            attempt=entry.attempt,
            journal=journal,
            handlers=runtime.handlers,
            task=body,
            clients=runtime.clients,
            scope=entry.scope,
        )
        failure = _undo(runtime, entry, ctx, kinds)
        traces.extend(asdict(trace) for trace in ctx.traces)
        if failure is not None:
            saga.release(entry, owner)
            return compensated, traces, failure
        saga.mark_done(entry, len(ctx.traces))
        compensated.append(
            {"cell": entry.cell, "attempt": entry.attempt, "effects": len(ctx.traces)}
        )
    return compensated, traces, None


def _claim_seconds(body: dict[str, Any]) -> float:
    """The claim's length: the task's ``TimeoutSeconds`` (its attempt is given up by then)."""
    timeout = body.get("timeout_seconds")
    if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0:
        return float(timeout)
    return CLAIM_SECONDS


def _undo(
    runtime: CellRuntime,
    entry: SagaEntry,
    ctx: CellContext[Any],
    kinds: dict[str, type[Effect[Any]]],
) -> TaskOutcome | None:
    """Run ``entry``'s compensation in ``ctx``; None when it finished, else the task's failure.

    ``kinds`` are :func:`known_effects` (made once per compensate, not once per entry).
    """
    try:
        if entry.kind == "cell":
            return _undo_cell(runtime, entry, ctx)
        effect = _effect(kinds, entry)
        if isinstance(effect, TaskOutcome):
            return effect
        ctx.effect(effect)
    except (EffectFailure, RunRefused, UndeclaredEffectError, BusinessError) as exc:
        return TaskOutcome.failed(exc.error, exc.cause[:_MAX_CAUSE])
    except (Exception, SystemExit) as exc:  # its own failure, named as the runner names one
        return TaskOutcome.failed(type(exc).__name__, str(exc)[:_MAX_CAUSE])
    return None


def _undo_cell(runtime: CellRuntime, entry: SagaEntry, ctx: CellContext[Any]) -> TaskOutcome | None:
    """``Cell.compensate`` of the exact version that ran, on the run's input and output."""
    name, _, version = entry.cell.rpartition("@")
    try:
        cell = runtime.cells.resolve(name, _exact(version))
    except (CellNotFoundError, ValueError) as exc:
        return TaskOutcome.failed(
            "StepFlow.Cell.NotFound",
            f"Cannot compensate {entry.cell} (state {entry.state}, attempt {entry.attempt}): {exc}"[
                :_MAX_CAUSE
            ],
        )
    contract = cell.contract()
    try:
        data = contract.input.model_validate(entry.input)
        output = contract.output.model_validate(entry.output)
    except ValidationError as exc:
        return TaskOutcome.failed(
            INVALID_ENTRY,
            f"The recorded input or output of {entry.cell} (state {entry.state}, attempt "
            f"{entry.attempt}) is no longer valid for its compensation: {exc}"[:_MAX_CAUSE],
        )
    ctx.declared = effect_classes(contract.effects)
    cell().compensate(ctx, data, output)
    return None


def _effect(kinds: dict[str, type[Effect[Any]]], entry: SagaEntry) -> Effect[Any] | TaskOutcome:
    """The recorded compensating effect, rebuilt from a type the runtime knows (never imported)."""
    kind = kinds.get(entry.type or "")
    if kind is None:
        return TaskOutcome.failed(
            UNKNOWN_EFFECT,
            f"Cannot compensate effect #{entry.index} of {entry.cell} (state {entry.state}, "
            f"attempt {entry.attempt}): its compensation {entry.type} is not an effect type of "
            "the loaded cells or handlers. Load the module that defines it.",
        )
    try:
        return kind.model_validate(entry.request or {})
    except ValidationError as exc:
        return TaskOutcome.failed(
            INVALID_ENTRY,
            f"The recorded compensation {entry.type} of {entry.cell} (state {entry.state}) "
            f"no longer validates: {exc}"[:_MAX_CAUSE],
        )


def known_effects(runtime: CellRuntime) -> dict[str, type[Effect[Any]]]:
    """Effect types by ``module.qualname``, among those the runtime knows.

    The handlers' types, the cells' declared effects and their subclasses: only
    classes already loaded, so a type path read from the log is never imported.
    """
    roots: list[type[Any]] = list(runtime.handlers.handlers)
    for key in runtime.cells.keys():  # noqa: SIM118 (a registry, not a dict)
        name, _, version = key.rpartition("@")
        cell = runtime.cells.resolve(name, _exact(version))
        roots.extend(effect_classes(cell.contract().effects) or ())
    found: dict[str, type[Effect[Any]]] = {}
    seen: set[type[Any]] = set()
    while roots:
        kind = roots.pop()
        if kind in seen or not (isinstance(kind, type) and issubclass(kind, Effect)):
            continue
        seen.add(kind)
        found.setdefault(f"{kind.__module__}.{kind.__qualname__}", kind)
        roots.extend(kind.__subclasses__())
    return found


def _exact(version: str) -> str:
    """``version`` as ``MAJOR.MINOR.PATCH``, which the registry resolves exactly."""
    major, minor, patch = version_key(version)
    return f"{major}.{minor}.{patch}"


def _lease_log(runtime: CellRuntime) -> LeaseLog:
    journal = runtime.journal
    if isinstance(journal, LogJournal):
        return journal.log
    log = getattr(journal, "log", None)
    if log is None or not hasattr(log, "put_lease"):
        raise TypeError(
            "sagas keep their records in the coordination log of the cell runtime's journal: "
            f"the journal ({type(journal).__name__}) must be a LogJournal or have that log as "
            "its 'log' attribute (a wrapper of a LogJournal: log = inner.log)"
        )
    return typing.cast(LeaseLog, log)


def _fence(runtime: CellRuntime) -> Callable[[], None] | None:
    """The journal's fence (a ``check()`` like the worker's lease check), for compensations too."""
    check = getattr(runtime.journal, "check", None)
    return check if callable(check) else None
