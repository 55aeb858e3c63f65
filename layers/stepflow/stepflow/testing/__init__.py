"""Run workflows in memory on a virtual clock: the API for unit-testing workflows."""

from stepflow.testing.driver import Handler, TransitionLimitError, execute
from stepflow.testing.result import ExecutionResult, ExecutionStatus

__all__ = ["ExecutionResult", "ExecutionStatus", "Handler", "TransitionLimitError", "execute"]
