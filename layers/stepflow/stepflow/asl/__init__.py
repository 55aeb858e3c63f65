"""The Amazon States Language: parse and validate definitions into typed, frozen nodes."""

from stepflow.asl.catch import Catcher
from stepflow.asl.diagnostics import DefinitionError, Diagnostic
from stepflow.asl.machine import Machine, StateMachine
from stepflow.asl.parser import parse, validate
from stepflow.asl.retry import Retrier
from stepflow.asl.states.base import MISSING, ROOT_PATH, Missing, QueryLanguage, State
from stepflow.asl.states.choice import (
    And,
    ChoiceRule,
    ChoiceState,
    Comparison,
    Condition,
    JSONataCondition,
    Not,
    Or,
)
from stepflow.asl.states.map import MapState
from stepflow.asl.states.parallel import ParallelState
from stepflow.asl.states.simple import FailState, PassState, SucceedState
from stepflow.asl.states.task import TaskState
from stepflow.asl.states.wait import WaitState

__all__ = [
    "MISSING",
    "ROOT_PATH",
    "And",
    "Catcher",
    "ChoiceRule",
    "ChoiceState",
    "Comparison",
    "Condition",
    "DefinitionError",
    "Diagnostic",
    "FailState",
    "JSONataCondition",
    "Machine",
    "MapState",
    "Missing",
    "Not",
    "Or",
    "ParallelState",
    "PassState",
    "QueryLanguage",
    "Retrier",
    "State",
    "StateMachine",
    "SucceedState",
    "TaskState",
    "WaitState",
    "parse",
    "validate",
]
