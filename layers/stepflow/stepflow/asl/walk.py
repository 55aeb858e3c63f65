"""Every state of a raw definition, nested machines too: the one walk the checks share.

The style warnings, the EXPRESS refusals and the resource diagnostics all read
a definition as JSON values (before or beside the parser) and visit each state
of the top machine, of each Parallel branch and of each Map's item processor.
:func:`iter_states` is that walk; each caller keeps what it checks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from stepflow.asl.parse_context import pointer

PROCESSOR_KEYS = ("ItemProcessor", "Iterator")
"""Where a Map state keeps its item processor (``Iterator`` is the older name)."""


@dataclass(frozen=True, slots=True)
class StateVisit:
    """One state, where it is, and the states and machines that enclose it."""

    path: tuple[str | int, ...]
    """The keys from the definition's root to the state: ``("States", "A", "Branches", 0, ...)``."""
    state: Mapping[str, Any]
    scopes: tuple[tuple[Mapping[str, Any], Mapping[str, Any]], ...]
    """``(enclosing Parallel or Map state, its branch or processor holding this state)``,
    outermost first; empty for a state of the top machine."""

    @property
    def name(self) -> str:
        """The state's name."""
        return str(self.path[-1])

    @property
    def location(self) -> str:
        """The state's JSON pointer (``~`` and ``/`` escaped), as diagnostics give it."""
        return pointer("", *self.path)


def iter_states(raw: Any) -> Iterator[StateVisit]:
    """Each state of ``raw`` that is a mapping, in document order, then the machines inside it.

    A Parallel state's ``Branches`` and a Map state's ``ItemProcessor`` (or
    ``Iterator``) are visited right after the state itself; anything that is
    not a mapping where a machine or a state should be is skipped. Recursive,
    so a definition nested past Python's limit raises ``RecursionError``.
    """
    yield from _machine(raw, (), ())


def _machine(
    machine: Any,
    path: tuple[str | int, ...],
    scopes: tuple[tuple[Mapping[str, Any], Mapping[str, Any]], ...],
) -> Iterator[StateVisit]:
    states = machine.get("States") if isinstance(machine, Mapping) else None
    if not isinstance(states, Mapping):
        return
    for name, state in states.items():
        if not isinstance(state, Mapping):
            continue
        here = (*path, "States", name)
        yield StateVisit(here, state, scopes)
        kind = state.get("Type")
        branches = state.get("Branches")
        if kind == "Parallel" and isinstance(branches, list):
            for index, branch in enumerate(branches):
                inner = (*scopes, (state, branch)) if isinstance(branch, Mapping) else scopes
                yield from _machine(branch, (*here, "Branches", index), inner)
        if kind == "Map":
            for key in PROCESSOR_KEYS:
                processor = state.get(key)
                if isinstance(processor, Mapping):
                    yield from _machine(processor, (*here, key), (*scopes, (state, processor)))
