"""A parsed state machine: the top level, a Parallel branch or a Map item processor."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from stepflow.asl.states.base import QueryLanguage, State


@dataclass(frozen=True, slots=True)
class Machine:
    """A ``StartAt`` and its ``States``.

    ``id`` names the machine inside its definition: ``""`` for the top level,
    ``"<parent id>/<state name>/<branch index>"`` for a Parallel branch and
    ``"<parent id>/<state name>"`` for a Map's item processor. The engine
    records it in execution state so that state can be serialised.
    """

    id: str
    start_at: str
    states: Mapping[str, State]
    comment: str | None = None
    query_language: QueryLanguage = "JSONPath"


@dataclass(frozen=True, slots=True)
class StateMachine:
    """A whole definition: its top-level machine and every nested one by id."""

    root: Machine
    machines: Mapping[str, Machine] = field(default_factory=dict)
    timeout_seconds: int | None = None
    version: str | None = None
    comment: str | None = None
    query_language: QueryLanguage = "JSONPath"
