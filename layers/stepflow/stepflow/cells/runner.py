"""Running a cell task: resolve the cell, validate its input, run it, report its outcome.

:class:`CellRuntime` runs the ``stepflow:cell:*`` and ``stepflow:saga:*`` Task
resources; :class:`CellTasks` puts it in front of a process's task invoker,
so cells run wherever tasks run: inline in the stepper (memory, ``stepflow
local``, Lambda) and in EXPRESS batches, all through the one driver.
"""

from __future__ import annotations

import typing
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from stepflow.cells.context import CellContext, NonDeterministicError, UndeclaredEffectError
from stepflow.cells.handlers import EffectFailure, EffectHandlers
from stepflow.cells.journal import EffectJournal
from stepflow.cells.model import BusinessError
from stepflow.cells.registry import AnyCell, CellNotFoundError, CellRegistry
from stepflow.engine.resources import describe
from stepflow.errors import StatesErrorName
from stepflow.runtime.clients import TaskClients
from stepflow.runtime.outcome import TaskInvoker, TaskOutcome

SERVICE = "stepflow"
"""The service of StepFlow's own Task resources (``arn:aws:states:::stepflow:...``)."""

NOT_FOUND = "StepFlow.Cell.NotFound"
INVALID_INPUT = "StepFlow.Cell.InvalidInput"
INVALID_OUTPUT = "StepFlow.Cell.InvalidOutput"

_MAX_CAUSE = 32_768


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
    """The classes of a declared effect union (None: any effect may be requested)."""
    if effects is Any:
        return None
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
            cell = self.cells.resolve(*reference)
        except CellNotFoundError as exc:
            return TaskOutcome.failed(NOT_FOUND, str(exc))
        return self.run(cell, body)

    def context(self, cell: AnyCell, body: dict[str, Any], scope: str = "run") -> CellContext[Any]:
        """The context ``cell`` runs in for the task ``body``."""
        return CellContext(
            cell=cell.key(),
            execution_arn=str(body.get("execution_arn", "")),
            state_name=str(body.get("state_name", "")),
            attempt=str(body.get("attempt_id") or body.get("task_id", "")),
            journal=self.journal,
            handlers=self.handlers,
            declared=effect_classes(cell.contract().effects),
            task=body,
            clients=self.clients,
            scope=scope,
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
        return _with_traces(refused or outcome, ctx)

    def _outcome(self, cell: AnyCell, ctx: CellContext[Any], data: BaseModel) -> TaskOutcome:
        contract = cell.contract()
        try:
            result = cell().run(ctx, data)
        except BusinessError as exc:
            return TaskOutcome.failed(exc.error, exc.cause[:_MAX_CAUSE])
        except (EffectFailure, NonDeterministicError, UndeclaredEffectError) as exc:
            return TaskOutcome.failed(exc.error, exc.cause[:_MAX_CAUSE])
        except Exception as exc:  # the cell's own failure, named as Lambda names one
            return TaskOutcome.failed(type(exc).__name__, str(exc)[:_MAX_CAUSE])
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


def _with_traces(outcome: TaskOutcome, ctx: CellContext[Any]) -> TaskOutcome:
    if not ctx.traces:
        return outcome
    from dataclasses import replace

    return replace(outcome, effects=tuple(asdict(trace) for trace in ctx.traces))


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
