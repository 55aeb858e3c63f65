"""Counting the effects cells performed, replayed and failed, for the process's metrics.

Where a task's outcome becomes its result event (:mod:`stepflow.runtime.task_runs`,
:mod:`stepflow.runtime.express`), its effect reports are added to the tally of the
current context, if one is open (:func:`tallying`). The stepper Lambda opens one per
batch and reports it as metrics. A context variable, not a global: ``stepflow local``
runs several handlers at once on threads, each with its own context.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class EffectTally:
    """What the effects of the tasks run in one context did.

    ``performed``: effects a handler was called for (succeeded or failed);
    ``replayed``: effects whose recorded result was returned instead;
    ``failed``: performed effects that failed;
    ``compensations``: saga compensations that requested an effect
    (distinct ``compensate:<entry>`` scopes per task attempt).
    """

    performed: int = 0
    replayed: int = 0
    failed: int = 0
    compensations: int = 0
    tasks: int = 0
    """Task attempts that reported at least one effect."""

    def add(self, effects: Iterable[Mapping[str, Any]]) -> None:
        """Count the effect reports (or traces) of one task attempt."""
        scopes: set[str] = set()
        seen = False
        for effect in effects:
            seen = True
            if effect.get("replayed") is True:
                self.replayed += 1
            else:
                self.performed += 1
                if effect.get("ok") is False:
                    self.failed += 1
            scope = effect.get("scope")
            if isinstance(scope, str) and scope.startswith("compensate:"):
                scopes.add(scope)
        self.tasks += seen
        self.compensations += len(scopes)


_current: ContextVar[EffectTally | None] = ContextVar("stepflow_effect_tally", default=None)


@contextmanager
def tallying() -> Iterator[EffectTally]:
    """Count the effects of the tasks run in this context until the block ends."""
    tally = EffectTally()
    token = _current.set(tally)
    try:
        yield tally
    finally:
        _current.reset(token)


def count_effects(effects: Iterable[Mapping[str, Any]]) -> None:
    """Add one task attempt's effects to the current tally (none open: nothing)."""
    tally = _current.get()
    if tally is not None:
        tally.add(effects)
