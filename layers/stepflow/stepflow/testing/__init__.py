"""Run workflows in process on a virtual clock: the API for testing workflows.

:func:`execute` runs one execution to its end; :class:`WorkflowEnvironment`
starts executions, moves time, answers callback and activity tasks and stops
executions. Both drive the runtime's Stepper, as production does.

The names load on first use, so that importing a submodule (the pytest plugin,
loaded by every pytest run) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stepflow.testing.delivery import DeliveryError
    from stepflow.testing.driver import Handler, execute, open_environment
    from stepflow.testing.environment import WorkflowEnvironment
    from stepflow.testing.mocks import MockConfig, MockConfigError
    from stepflow.testing.result import ExecutionResult, ExecutionStatus, StateRun, TaskAttempt
    from stepflow.testing.tasks import OpenTask
    from stepflow.testing.timing import NO_ANSWER, Delay

_WHERE = {
    "DeliveryError": "delivery",
    "Handler": "driver",
    "execute": "driver",
    "open_environment": "driver",
    "WorkflowEnvironment": "environment",
    "MockConfig": "mocks",
    "MockConfigError": "mocks",
    "ExecutionResult": "result",
    "ExecutionStatus": "result",
    "StateRun": "result",
    "TaskAttempt": "result",
    "OpenTask": "tasks",
    "NO_ANSWER": "timing",
    "Delay": "timing",
}

__all__ = [
    "NO_ANSWER",
    "Delay",
    "DeliveryError",
    "ExecutionResult",
    "ExecutionStatus",
    "Handler",
    "MockConfig",
    "MockConfigError",
    "OpenTask",
    "StateRun",
    "TaskAttempt",
    "WorkflowEnvironment",
    "execute",
    "open_environment",
]


def __getattr__(name: str) -> Any:
    """Load ``name`` from its submodule on first use."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'stepflow.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"stepflow.testing.{module}"), name)
    globals()[name] = value
    return value
