"""``Choice``: branches on rules over the state's input."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stepflow.asl.states.base import CACHE, MISSING, State, without_caches
from stepflow.data.jsonpath import Path

COMPARISON_OPERATORS = (
    "BooleanEquals",
    "IsBoolean",
    "IsNull",
    "IsNumeric",
    "IsPresent",
    "IsString",
    "IsTimestamp",
    "NumericEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "StringEquals",
    "StringGreaterThan",
    "StringGreaterThanEquals",
    "StringLessThan",
    "StringLessThanEquals",
    "StringMatches",
    "TimestampEquals",
    "TimestampGreaterThan",
    "TimestampGreaterThanEquals",
    "TimestampLessThan",
    "TimestampLessThanEquals",
)
"""Every comparison operator; each but ``Is*`` and ``StringMatches`` also has a ``…Path`` form."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """``Variable`` compared with a literal, or with a path when ``value_is_path``."""

    variable: Path
    operator: str
    value: Any
    value_is_path: bool = False


@dataclass(frozen=True, slots=True)
class And:
    """All of ``rules`` hold."""

    rules: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """At least one of ``rules`` holds."""

    rules: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """``rule`` does not hold."""

    rule: Condition


@dataclass(frozen=True, slots=True)
class JSONataCondition:
    """A JSONata ``Condition`` expression (``{% … %}``)."""

    expression: str


Condition = Comparison | And | Or | Not | JSONataCondition


@dataclass(frozen=True, slots=True)
class ChoiceRule:
    """A top-level rule: its condition, the state to go to, and JSONata-era fields."""

    condition: Condition
    next: str
    assign: Mapping[str, Any] | None = None
    output: Any = MISSING
    test: Any = field(default=None, init=False, repr=False, compare=False, metadata=CACHE)
    """The JSONPath condition compiled, set on first use by the engine
    (:func:`stepflow.engine.choice_compiled.rule_test`); not part of the rule's value,
    nor of a copy."""

    def __reduce__(self) -> tuple[Any, ...]:
        """Copied and pickled without :attr:`test` (see :func:`without_caches`)."""
        return without_caches(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChoiceState(State):
    """A Choice state: the first matching rule wins, else ``default``."""

    choices: tuple[ChoiceRule, ...] = ()
    default: str | None = None
