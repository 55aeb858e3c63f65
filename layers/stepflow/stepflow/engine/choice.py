"""Evaluating Choice rules (JSONPath mode)."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from stepflow.asl.states.choice import And, Comparison, Condition, Not, Or
from stepflow.data.glob import glob_matches
from stepflow.data.jsonpath import PathNotFoundError
from stepflow.data.scope import Scope
from stepflow.errors import StatesError, StatesErrorName

_MISSING: Any = object()


def holds(rule: Condition, scope: Scope) -> bool:
    """Whether ``rule`` holds for the state input and context in ``scope``.

    The general rule: the engine runs :func:`~stepflow.engine.choice_compiled.compile_condition`
    of it, which must equal it for every rule and scope.
    """
    if isinstance(rule, Comparison):
        return _compare(rule, scope)
    if isinstance(rule, And):
        return all(holds(r, scope) for r in rule.rules)
    if isinstance(rule, Or):
        return any(holds(r, scope) for r in rule.rules)
    if isinstance(rule, Not):
        return not holds(rule.rule, scope)
    raise TypeError(f"not a JSONPath choice rule: {rule!r}")


def _compare(rule: Comparison, scope: Scope) -> bool:
    scope.budget.check()
    try:
        value = scope.read(rule.variable)
    except PathNotFoundError:
        value = _MISSING
    op = rule.operator
    if op == "IsPresent":
        return bool((value is not _MISSING) == rule.value)
    if value is _MISSING:
        raise StatesError(
            StatesErrorName.RUNTIME,
            f"Invalid path '{rule.variable.text}': The choice state's condition path "
            "references an invalid value.",
        )
    if op.startswith("Is"):
        return bool(_TYPE_TESTS[op](value) == rule.value)
    expected = rule.value
    if rule.value_is_path:
        try:
            expected = scope.read(rule.value)
        except PathNotFoundError:
            raise StatesError(
                StatesErrorName.RUNTIME,
                f"Invalid path '{rule.value.text}': The choice state's condition path "
                "references an invalid value.",
            ) from None
    family, relation = _split(op)
    return _FAMILIES[family](value, expected, relation)


def _split(op: str) -> tuple[str, str]:
    split = _SPLITS.get(op)
    if split is None:
        for family in ("Boolean", "Numeric", "String", "Timestamp"):
            if op.startswith(family):
                split = _SPLITS[op] = family, op[len(family) :]
                break
        else:
            raise ValueError(op)
    return split


_SPLITS: dict[str, tuple[str, str]] = {}
"""Operators met so far, split into family and relation (a few dozen at most)."""


def _is_number(v: Any) -> bool:
    return isinstance(v, _NUMBER) and not isinstance(v, bool)


_NUMBER = int | float
"""Built once: ``int | float`` written in the call would build the union on every call."""


def _relate(a: Any, b: Any, relation: str) -> bool:
    compare = _RELATIONS.get(relation)
    if compare is None:
        raise ValueError(relation)
    return bool(compare(a, b))


_RELATIONS: dict[str, Callable[[Any, Any], Any]] = {
    "Equals": operator.eq,
    "GreaterThan": operator.gt,
    "GreaterThanEquals": operator.ge,
    "LessThan": operator.lt,
    "LessThanEquals": operator.le,
}


def _boolean(value: Any, expected: Any, relation: str) -> bool:
    return isinstance(value, bool) and isinstance(expected, bool) and value == expected


def _numeric(value: Any, expected: Any, relation: str) -> bool:
    return _is_number(value) and _is_number(expected) and _relate(value, expected, relation)


def _string(value: Any, expected: Any, relation: str) -> bool:
    if not isinstance(value, str) or not isinstance(expected, str):
        return False
    if relation == "Matches":
        return glob_matches(expected, value)
    return _relate(value, expected, relation)


def _timestamp(value: Any, expected: Any, relation: str) -> bool:
    a, b = parse_timestamp(value), parse_timestamp(expected)
    if a is None or b is None:
        return False
    return _relate(a, b, relation)


_FAMILIES: dict[str, Callable[[Any, Any, str], bool]] = {
    "Boolean": _boolean,
    "Numeric": _numeric,
    "String": _string,
    "Timestamp": _timestamp,
}

_TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "IsNull": lambda v: v is None,
    "IsBoolean": lambda v: isinstance(v, bool),
    "IsNumeric": _is_number,
    "IsString": lambda v: isinstance(v, str),
    "IsTimestamp": lambda v: parse_timestamp(v) is not None,
}

_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
)


def parse_timestamp(value: Any) -> datetime | None:
    """Parse an RFC 3339 timestamp (with a time zone); ``None`` if ``value`` is not one."""
    if not isinstance(value, str) or _TIMESTAMP.fullmatch(value) is None:
        return None
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    head, dot, rest = text.partition(".")
    if dot:  # Python accepts at most 6 fractional digits
        digits = re.match(r"\d+", rest)
        assert digits is not None
        text = f"{head}.{digits.group()[:6].ljust(6, '0')}{rest[digits.end() :]}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
