"""What the built-in effect tests share: a noting effect, a crash, task bodies, runtimes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from stepflow.cells import (
    CellModules,
    CellRegistry,
    CellRuntime,
    EffectCall,
    EffectHandlers,
    LogJournal,
    Policy,
)
from stepflow.cells.effects import Effect, IdempotencyKey
from stepflow.cells.journal import EffectRecord

ARN = "arn:aws:states:us-east-1:123456789012:execution:m:e"
FAST = Policy(attempts=3, base_delay=0.0, jitter=0.0, sleep=lambda s: None)
"""Three calls, no waiting (the tests count calls, never time)."""


class Nope(BaseModel):
    why: str


class Mark(BaseModel):
    n: int


class Note(Effect[Mark]):
    kind: Literal["note"] = "note"
    n: int


class Crash(BaseException):
    """The process dying (no ``except Exception`` catches it)."""


@dataclass
class CrashingJournal:
    """A journal whose first ``record`` dies before writing: the effect ran, unrecorded."""

    inner: LogJournal
    crashes: int = 1

    def recorded(self, key: IdempotencyKey) -> EffectRecord | None:
        return self.inner.recorded(key)

    def record(self, key: IdempotencyKey, record: EffectRecord) -> EffectRecord:
        if self.crashes:
            self.crashes -= 1
            raise Crash
        return self.inner.record(key, record)


def noting(notes: list[int]) -> Callable[[Note, EffectCall], Mark]:
    def note(effect: Note, call: EffectCall) -> Mark:
        notes.append(effect.n)
        return Mark(n=effect.n)

    return note


def task_body(cell: str, data: dict[str, Any], task_id: str = "t1") -> dict[str, Any]:
    return {
        "resource": f"arn:aws:states:::stepflow:cell:{cell}",
        "input": data,
        "execution_arn": ARN,
        "state_name": "S",
        "task_id": task_id,
        "role_arn": "arn:aws:iam::123456789012:role/StepFlowExecutionRole",
    }


def runtime_of(journal: Any, handlers: EffectHandlers, *cells: Any) -> CellRuntime:
    registry = CellRegistry()
    for cell in cells:
        registry.register(cell)
    return CellRuntime(registry, handlers, journal)


def noting_modules(cell: Any, notes: list[int]) -> CellModules:
    """Modules with ``cell`` and a :class:`Note` handler that appends to ``notes``."""
    modules = CellModules(CellRegistry(), EffectHandlers())
    modules.cells.register(cell)
    modules.handlers.register(Note, noting(notes))
    return modules


def one_cell_machine(state: str, cell: str) -> dict[str, Any]:
    """A workflow of one Task state running the cell ``cell``."""
    return {
        "StartAt": state,
        "States": {
            state: {
                "Type": "Task",
                "Resource": f"arn:aws:states:::stepflow:cell:{cell}",
                "End": True,
            }
        },
    }
