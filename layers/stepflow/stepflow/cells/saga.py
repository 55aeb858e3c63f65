"""Sagas: compensating completed cells in reverse order (``stepflow:saga:compensate``).

After every cell run, :func:`after_run` registers what the run needs undone
in the execution's saga record (:mod:`stepflow.cells.saga_log`): the run itself
when the cell succeeded and overrides :meth:`~stepflow.cells.Cell.compensate`,
and each effect of the run (whether the cell succeeded or failed) whose
:meth:`~stepflow.cells.Effect.compensation` names an effect. A run with
nothing to undo reads and writes nothing.

The Task ``arn:aws:states:::stepflow:saga:compensate`` (:func:`compensate`),
typically reached from a Catch, runs the registered compensations not run yet,
newest first. Each runs in a :class:`~stepflow.cells.CellContext` whose scope is
``compensate:<entry id>``, so its effects are journaled and replayed after a
crash; once it finished, a done-marker is written and no later compensate
task runs it again. A compensation that fails fails the task with its error;
a Retry of the state runs the compensations not done, from that one on (its
effects that succeeded are replayed, the failed one is tried again).
See docs/cells-sagas.md.
"""

from __future__ import annotations

import typing
from dataclasses import asdict
from typing import Any

from pydantic import BaseModel, ValidationError

from stepflow.cells.context import CellContext, NonDeterministicError, UndeclaredEffectError
from stepflow.cells.effects import Effect
from stepflow.cells.handlers import EffectFailure
from stepflow.cells.journal import LogJournal
from stepflow.cells.model import BusinessError
from stepflow.cells.registry import CellNotFoundError, version_key
from stepflow.cells.runner import effect_classes
from stepflow.cells.saga_log import (
    CompensationJournal,
    SagaEntry,
    SagaLimitError,
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

UNKNOWN_EFFECT = "StepFlow.Saga.UnknownEffect"
"""A recorded compensating effect whose type the runtime does not know."""

INVALID_ENTRY = "StepFlow.Saga.InvalidEntry"
"""A recorded compensation that cannot be rebuilt (its data no longer validates)."""

_MAX_CAUSE = 32_768


def after_run(
    runtime: CellRuntime,
    cell: AnyCell,
    ctx: CellContext[Any],
    data: BaseModel,
    outcome: TaskOutcome,
) -> TaskOutcome | None:
    """Register what a cell run needs undone if the saga is compensated.

    Returns None, or the outcome that replaces the run's when the saga record
    cannot hold more (``StepFlow.Saga.LimitExceeded``).
    """
    new: list[SagaEntry] = []
    for trace in ctx.traces:
        undo = trace.compensation
        if trace.ok and undo is not None:
            new.append(
                SagaEntry(
                    "effect", ctx.cell, ctx.attempt, ctx.state_name, index=trace.index,
                    effect=str(undo.get("effect")), type=str(undo.get("type")),
                    request=dict(undo.get("request") or {}),
                )
            )  # fmt: skip
    if outcome.ok and cell.compensates():
        new.append(
            SagaEntry(
                "cell", ctx.cell, ctx.attempt, ctx.state_name,
                input=data.model_dump(mode="json"), output=outcome.output,
            )
        )  # fmt: skip
    if not new:
        return None
    saga = SagaLog(_lease_log(runtime), ctx.execution_arn, saga_partition(ctx.attempt))
    try:
        saga.add(new)
    except SagaLimitError as exc:
        return TaskOutcome.failed(exc.error, exc.cause)
    except ValueError as exc:  # the stored record was damaged: refuse to add to it
        return TaskOutcome.failed(INVALID_ENTRY, str(exc)[:_MAX_CAUSE])
    return None


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
    attempt = str(body.get("attempt_id") or body.get("task_id", ""))
    log = _lease_log(runtime)
    saga = SagaLog(log, arn, saga_partition(attempt))
    journal = CompensationJournal(log)
    compensated: list[dict[str, Any]] = []
    traces: list[dict[str, Any]] = []
    try:
        entries = saga.entries()
    except ValueError as exc:
        return TaskOutcome.failed(INVALID_ENTRY, str(exc)[:_MAX_CAUSE])
    for entry in reversed(entries):
        if saga.done(entry):
            continue
        ctx: CellContext[Any] = CellContext(
            cell=entry.cell,
            execution_arn=arn,
            state_name=entry.state,
            attempt=entry.attempt,
            journal=journal,
            handlers=runtime.handlers,
            task=body,
            clients=runtime.clients,
            scope=entry.scope,
        )
        failure = _undo(runtime, entry, ctx)
        traces.extend(asdict(trace) for trace in ctx.traces)
        if failure is not None:
            return _traced(failure, traces)
        saga.mark_done(entry, len(ctx.traces))
        compensated.append(
            {"cell": entry.cell, "attempt": entry.attempt, "effects": len(ctx.traces)}
        )
    return _traced(TaskOutcome.succeeded({"compensated": compensated}), traces)


def _undo(runtime: CellRuntime, entry: SagaEntry, ctx: CellContext[Any]) -> TaskOutcome | None:
    """Run ``entry``'s compensation in ``ctx``; None when it finished, else the task's failure."""
    try:
        if entry.kind == "cell":
            return _undo_cell(runtime, entry, ctx)
        effect = _effect(runtime, entry)
        if isinstance(effect, TaskOutcome):
            return effect
        ctx.effect(effect)
    except (EffectFailure, NonDeterministicError, UndeclaredEffectError, BusinessError) as exc:
        return TaskOutcome.failed(exc.error, exc.cause[:_MAX_CAUSE])
    except Exception as exc:  # the compensation's own failure, named as Lambda names one
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


def _effect(runtime: CellRuntime, entry: SagaEntry) -> Effect[Any] | TaskOutcome:
    """The recorded compensating effect, rebuilt from a type the runtime knows (never imported)."""
    kind = known_effects(runtime).get(entry.type or "")
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


def _traced(outcome: TaskOutcome, traces: list[dict[str, Any]]) -> TaskOutcome:
    if not traces:
        return outcome
    from dataclasses import replace

    return replace(outcome, effects=tuple(traces))
