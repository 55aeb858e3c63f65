"""Fields every state shares, and the sentinel for fields that are absent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
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

CACHE = {"cache": True}
"""The metadata of a field that caches what the engine derives from the others."""


def without_caches(value: Any) -> tuple[Any, ...]:
    """``__reduce__`` of a frozen, slotted dataclass whose cache fields are left behind.

    A copy (``copy.copy``, ``copy.deepcopy``) or an unpickled value starts with its caches
    empty (``None``): a cache is a closure over the fields it was made from, which a copy
    may change, and which pickle cannot store. The state is the list of field values that
    the dataclass's own ``__setstate__`` takes.
    """
    state = [None if f.metadata.get("cache") else getattr(value, f.name) for f in fields(value)]
    return _blank, (value.__class__,), state


def _blank(kind: type[Any]) -> Any:
    """An instance of ``kind`` without its fields, for its ``__setstate__`` to fill."""
    return object.__new__(kind)


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
    runner: Any = field(default=None, init=False, repr=False, compare=False, metadata=CACHE)
    """The engine's handler of this state, resolved once on its first run
    (see :mod:`stepflow.engine.plans`); not part of the state's value, nor of a copy."""

    def __reduce__(self) -> tuple[Any, ...]:
        """Copied and pickled without :attr:`runner` (see :func:`without_caches`)."""
        return without_caches(self)

    @property
    def is_terminal(self) -> bool:
        """Whether the execution (or branch) ends after this state."""
        return self.end or self.type in ("Succeed", "Fail")
