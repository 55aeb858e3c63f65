"""Run workflows in process on a virtual clock: the API for testing workflows.

:func:`execute` runs one execution to its end; :class:`WorkflowEnvironment`
starts executions, moves time, answers callback and activity tasks and stops
executions. Both drive the runtime's Stepper, as production does.
"""

from stepflow.testing.delivery import DeliveryError
from stepflow.testing.driver import Handler, execute, open_environment
from stepflow.testing.environment import WorkflowEnvironment
from stepflow.testing.result import ExecutionResult, ExecutionStatus
from stepflow.testing.tasks import OpenTask

__all__ = [
    "DeliveryError",
    "ExecutionResult",
    "ExecutionStatus",
    "Handler",
    "OpenTask",
    "WorkflowEnvironment",
    "execute",
    "open_environment",
]
