"""Sagas: compensating completed cells in reverse order (``stepflow:saga:compensate``).

Not built yet: the seam the saga part fills in. :func:`after_run` is called
after every cell run (it registers what the run will need undone);
:func:`compensate` runs the ``arn:aws:states:::stepflow:saga:compensate`` task.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel

from stepflow.errors import StatesErrorName
from stepflow.runtime.outcome import TaskOutcome

if typing.TYPE_CHECKING:
    from stepflow.cells.context import CellContext
    from stepflow.cells.registry import AnyCell
    from stepflow.cells.runner import CellRuntime


def after_run(
    runtime: CellRuntime,
    cell: AnyCell,
    ctx: CellContext[Any],
    data: BaseModel,
    outcome: TaskOutcome,
) -> None:
    """Record what a cell run needs undone if the saga is compensated (not built yet)."""
    return None


def compensate(runtime: CellRuntime, body: dict[str, Any]) -> TaskOutcome:
    """Run the compensations of the execution's completed cells, newest first (not built yet)."""
    return TaskOutcome.failed(StatesErrorName.RUNTIME, "stepflow:saga:compensate is not built yet")
