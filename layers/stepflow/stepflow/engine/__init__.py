"""The pure ASL engine: ``decide(definition, state, event, now) -> Decision``."""

from stepflow.engine.decide import DEFAULT_BUDGET, decide
from stepflow.engine.model import (
    CancelTask,
    Command,
    Complete,
    Continue,
    ContinueLater,
    Decision,
    Event,
    ExecutionState,
    ExecutionStatus,
    Frame,
    RunTask,
    Start,
    StartTimer,
    Stop,
    TaskFailed,
    TaskHeartbeat,
    TaskStarted,
    TaskSucceeded,
    TimerFired,
)
from stepflow.engine.resources import ResourceInfo, describe
from stepflow.engine.start import new_execution

__all__ = [
    "DEFAULT_BUDGET",
    "CancelTask",
    "Command",
    "Complete",
    "Continue",
    "ContinueLater",
    "Decision",
    "Event",
    "ExecutionState",
    "ExecutionStatus",
    "Frame",
    "ResourceInfo",
    "RunTask",
    "Start",
    "StartTimer",
    "Stop",
    "TaskFailed",
    "TaskHeartbeat",
    "TaskStarted",
    "TaskSucceeded",
    "TimerFired",
    "decide",
    "describe",
    "new_execution",
]
