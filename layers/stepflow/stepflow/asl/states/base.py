"""Fields every state shares, and the sentinel for fields that are absent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

from stepflow.data.jsonpath import Path, compile_path

QueryLanguage = Literal["JSONPath", "JSONata"]


class Missing(Enum):
    """Marks a field that the definition does not set (where ``null`` means something)."""

    MISSING = "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING = Missing.MISSING

ROOT_PATH: Path = compile_path("$")


@dataclass(frozen=True, slots=True, kw_only=True)
class State:
    """The fields common to all eight state types.

    ``input_path``/``output_path`` are ``None`` when the definition sets them
    to ``null`` (the state then sees, or emits, ``{}``). ``assign`` and
    ``output`` are the raw JSONata-era fields, compiled by the data layer.
    """

    name: str
    type: str
    comment: str | None = None
    query_language: QueryLanguage = "JSONPath"
    next: str | None = None
    end: bool = False
    input_path: Path | None = ROOT_PATH
    output_path: Path | None = ROOT_PATH
    assign: Mapping[str, Any] | None = None
    output: Any = MISSING
    runner: Any = field(default=None, init=False, repr=False, compare=False)
    """The engine's handler of this state, resolved once on its first run
    (see :mod:`stepflow.engine.plans`); not part of the state's value."""

    @property
    def is_terminal(self) -> bool:
        """Whether the execution (or branch) ends after this state."""
        return self.end or self.type in ("Succeed", "Fail")
