"""Effectful cells: typed business logic whose side effects are declared, recorded and undone.

See docs/cells.md. A cell (:class:`Cell`) requests typed effects
(:class:`Effect`) through its :class:`CellContext`; handlers
(:class:`EffectHandlers`, ``@handles``) perform them; each request and result
is recorded in the coordination log (:mod:`stepflow.cells.journal`), so a
re-run replays instead of repeating; a saga undoes completed cells in reverse
order (:mod:`stepflow.cells.saga`).
"""

from stepflow.cells.context import CellContext, NonDeterministicError, UndeclaredEffectError
from stepflow.cells.effects import Effect, IdempotencyKey
from stepflow.cells.handlers import (
    EffectCall,
    EffectFailure,
    EffectHandler,
    EffectHandlers,
    HandlerError,
    OutcomeUnknown,
    handles,
)
from stepflow.cells.journal import EffectJournal, EffectRecord, LogJournal
from stepflow.cells.model import BusinessError, Cell
from stepflow.cells.policy import (
    CIRCUIT_OPEN,
    DEFAULT_POLICY,
    NO_RETRY,
    TIMEOUT,
    EffectTimeout,
    Policy,
    TransientError,
)
from stepflow.cells.registry import CellModules, CellRegistry, cell_modules, load_modules
from stepflow.cells.runner import CellRuntime, CellTasks

__all__ = [
    "CIRCUIT_OPEN",
    "DEFAULT_POLICY",
    "NO_RETRY",
    "TIMEOUT",
    "BusinessError",
    "Cell",
    "CellContext",
    "CellModules",
    "CellRegistry",
    "CellRuntime",
    "CellTasks",
    "Effect",
    "EffectCall",
    "EffectFailure",
    "EffectHandler",
    "EffectHandlers",
    "EffectJournal",
    "EffectRecord",
    "EffectTimeout",
    "HandlerError",
    "IdempotencyKey",
    "LogJournal",
    "NonDeterministicError",
    "OutcomeUnknown",
    "Policy",
    "TransientError",
    "UndeclaredEffectError",
    "cell_modules",
    "handles",
    "load_modules",
]
