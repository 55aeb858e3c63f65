"""Running a cell task: resolve the cell, validate its input, run it, report its outcome.

:class:`CellRuntime` runs the ``stepflow:cell:*`` and ``stepflow:saga:*`` Task
resources; :class:`CellTasks` puts it in front of a process's task invoker,
so cells run wherever tasks run: inline in the stepper (memory, ``stepflow
local``, Lambda) and in EXPRESS batches, all through the one driver.
"""

from __future__ import annotations

import typing
from dataclasses import asdict, dataclass, replace
from typing import Any

from pydantic import BaseModel, ValidationError

from stepflow.cells.context import CellContext, RunRefused, UndeclaredEffectError
from stepflow.cells.handlers import CircuitOpenFailure, EffectFailure, EffectHandlers
from stepflow.cells.journal import EffectJournal, LogJournal
from stepflow.cells.model import BusinessError
from stepflow.cells.registry import AnyCell, CellNotFoundError, CellRegistry
from stepflow.cells.versions import VersionPins, pinned_by, resolve_for_execution
from stepflow.engine.resources import describe
from stepflow.errors import StatesErrorName
from stepflow.runtime.clients import TaskClients
from stepflow.runtime.outcome import TaskDeferredError, TaskInvoker, TaskOutcome

SERVICE = "stepflow"
"""The service of StepFlow's own Task resources (``arn:aws:states:::stepflow:...``)."""

NOT_FOUND = "StepFlow.Cell.NotFound"
INVALID_INPUT = "StepFlow.Cell.InvalidInput"
INVALID_OUTPUT = "StepFlow.Cell.InvalidOutput"

_MAX_CAUSE = 32_768

BREAKER_RETRY_SECONDS = 10.0
"""When a cell stopped by an open circuit breaker is run again (a delayed message)."""


def is_stepflow_task(resource: str) -> bool:
    """True for a ``stepflow:cell:*`` or ``stepflow:saga:*`` resource."""
    return describe(resource).service == SERVICE


def cell_reference(action: str) -> tuple[str, str | None] | None:
    """``cell:<name>[:<version>]`` as (name, version); None for another action."""
    kind, _, rest = action.partition(":")
    if kind != "cell" or not rest:
        return None
    name, _, version = rest.partition(":")
    return name, version or None


def effect_classes(effects: Any) -> tuple[type[Any], ...] | None:
    """The classes of a declared effect union (None: any effect may be requested).

    ``None``, ``Never`` and ``NoReturn`` declare no effects: the cell may request none.
    """
    if effects is Any:
        return None
    if effects is None or effects is type(None) or effects in (typing.Never, typing.NoReturn):
        return ()
    origin = typing.get_origin(effects)
    if origin is typing.Annotated:
        return effect_classes(typing.get_args(effects)[0])
    if origin is typing.Union or type(effects).__name__ == "UnionType":
        found: list[type[Any]] = []
        for arg in typing.get_args(effects):
            classes = effect_classes(arg)
            if classes is None:
                return None
            found.extend(classes)
        return tuple(found)
    if isinstance(effects, type):
        return (effects,)
    return None


@dataclass(slots=True)
class CellRuntime:
    """Runs cells and compensations against a journal, with the given handlers and clients."""

    cells: CellRegistry
    handlers: EffectHandlers
    journal: EffectJournal
    clients: TaskClients | None = None
    pins: VersionPins | None = None
    """Where executions keep their cell versions (default: the journal's log, if it has one)."""

    def __post_init__(self) -> None:
        if self.pins is None and isinstance(self.journal, LogJournal):
            self.pins = VersionPins(self.journal.log)

    def __call__(self, body: dict[str, Any]) -> TaskOutcome:
        """Run the ``stepflow:*`` task of an inline task message ``body``."""
        info = describe(str(body.get("resource", "")))
        if info.action == "saga:compensate":
            from stepflow.cells.saga import compensate

            return compensate(self, body)
        reference = cell_reference(info.action)
        if reference is None or info.pattern != "request-response":
            return TaskOutcome.failed(
                StatesErrorName.RUNTIME,
                f"StepFlow has no task {info.action!r}{_pattern(info.pattern)}: use "
                "arn:aws:states:::stepflow:cell:<name>[:<version>] or "
                "arn:aws:states:::stepflow:saga:compensate.",
            )
        try:
            cell = resolve_for_execution(self.cells, self.pins, pinned_by(body), *reference)
        except CellNotFoundError as exc:
            return TaskOutcome.failed(NOT_FOUND, str(exc))
        return self.run(cell, body)

    def context(self, cell: AnyCell, body: dict[str, Any], scope: str = "run") -> CellContext[Any]:
        """The context ``cell`` runs in for the task ``body``.

        A run (scope ``run``) registers each effect's compensation in the saga as soon
        as the effect is recorded (:class:`~stepflow.cells.saga.SagaWatch`).
        """
        from stepflow.cells.saga import SagaWatch

        return CellContext(
            cell=cell.key(),
            execution_arn=str(body.get("execution_arn", "")),
            state_name=str(body.get("state_name", "")),
            attempt=attempt_of(body),
            journal=self.journal,
            handlers=self.handlers,
            declared=effect_classes(cell.contract().effects),
            task=body,
            clients=self.clients,
            scope=scope,
            watch=SagaWatch(self, body) if scope == "run" else None,
        )

    def run(self, cell: AnyCell, body: dict[str, Any]) -> TaskOutcome:
        """Run ``cell`` on the task's input; its output, or its error and cause."""
        contract = cell.contract()
        try:
            data = contract.input.model_validate(body.get("input"))
        except ValidationError as exc:
            return TaskOutcome.failed(
                INVALID_INPUT, f"The input of cell {cell.key()} is not valid: {exc}"[:_MAX_CAUSE]
            )
        ctx = self.context(cell, body)
        outcome = self._outcome(cell, ctx, data)
        from stepflow.cells.saga import after_run

        refused = after_run(self, cell, ctx, data, outcome)
        return with_traces(refused or outcome, [asdict(trace) for trace in ctx.traces])

    def _outcome(self, cell: AnyCell, ctx: CellContext[Any], data: BaseModel) -> TaskOutcome:
        contract = cell.contract()
        failed: TaskOutcome | None = None
        result: Any = None
        try:
            result = cell().run(ctx, data)
        except BusinessError as exc:
            failed = TaskOutcome.failed(exc.error, exc.cause[:_MAX_CAUSE])
        except (EffectFailure, RunRefused, UndeclaredEffectError) as exc:
            failed = TaskOutcome.failed(exc.error, exc.cause[:_MAX_CAUSE])
        except (Exception, SystemExit) as exc:  # the cell's own failure, named as Lambda does
            failed = TaskOutcome.failed(type(exc).__name__, str(exc)[:_MAX_CAUSE])
        if failed is None:
            ctx.check_complete()
        stopped = ctx.stopped
        if isinstance(stopped, RunRefused):  # whatever the cell made of it
            return TaskOutcome.failed(stopped.error, stopped.cause[:_MAX_CAUSE])
        if isinstance(stopped, CircuitOpenFailure):  # not performed: run again later, same keys
            deferred = TaskDeferredError(
                f"{stopped.effect}: {stopped.cause}", BREAKER_RETRY_SECONDS
            )
            raise deferred from stopped
        if stopped is not None:  # the journal failed: deliver this attempt again, same keys
            raise stopped
        if failed is not None:
            return failed
        try:
            output = contract.output.model_validate(result)
        except ValidationError as exc:
            return TaskOutcome.failed(
                INVALID_OUTPUT,
                f"The output of cell {cell.key()} is not a {contract.output.__name__}: {exc}"[
                    :_MAX_CAUSE
                ],
            )
        return TaskOutcome.succeeded(output.model_dump(mode="json"))


def attempt_of(body: dict[str, Any]) -> str:
    """The attempt id the journal keys are made of; refused when the message has none."""
    attempt = str(body.get("attempt_id") or body.get("task_id") or "")
    if not attempt or not body.get("execution_arn"):
        raise ValueError(
            "a cell task message names no execution and attempt: its effects "
            "could not be told apart from another attempt's"
        )
    return attempt


def with_traces(outcome: TaskOutcome, traces: list[dict[str, Any]]) -> TaskOutcome:
    """``outcome`` carrying the effect ``traces`` of the run or compensations (if any)."""
    return replace(outcome, effects=tuple(traces)) if traces else outcome


def _pattern(pattern: str) -> str:
    return "" if pattern == "request-response" else f" with the {pattern} pattern"


class CellTasks:
    """A task invoker that runs ``stepflow:*`` tasks on ``runtime`` and the rest on ``inner``."""

    def __init__(self, runtime: CellRuntime, inner: TaskInvoker) -> None:
        self.runtime = runtime
        self.inner = inner

    def __call__(self, body: dict[str, Any]) -> TaskOutcome:
        """Run the task of an inline task message ``body``."""
        if body.get("op") is None and is_stepflow_task(str(body.get("resource", ""))):
            return self.runtime(body)
        return self.inner(body)
