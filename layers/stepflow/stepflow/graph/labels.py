"""Short texts for the edges of a state machine graph: Choice rules and Catchers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The longest edge label, in characters; a longer one ends with an ellipsis.
MAX_LABEL = 40

_DEPTH = 8  # And/Or/Not nesting spelled out before "…"

_SYMBOLS = {
    "Equals": "==",
    "GreaterThan": ">",
    "GreaterThanEquals": ">=",
    "LessThan": "<",
    "LessThanEquals": "<=",
}
_TESTS = {
    "IsPresent": "present",
    "IsNull": "null",
    "IsString": "a string",
    "IsNumeric": "a number",
    "IsBoolean": "a boolean",
    "IsTimestamp": "a timestamp",
}
_KINDS = ("String", "Numeric", "Boolean", "Timestamp")


def truncate(text: str, limit: int = MAX_LABEL) -> str:
    """``text`` on one line, cut to ``limit`` characters with a trailing ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def catch_label(catcher: Mapping[str, Any]) -> str:
    """The ErrorEquals of a Catcher joined with commas (``?`` when it names none)."""
    errors = catcher.get("ErrorEquals")
    if isinstance(errors, list) and errors:
        return truncate(", ".join(str(error) for error in errors[:20]))
    return "?"


def rule_label(rule: Any) -> str:
    """A short text of a Choice rule: ``$.n > 3``, or the JSONata Condition."""
    return truncate(_rule_text(rule, 0))


def _rule_text(rule: Any, depth: int) -> str:
    if not isinstance(rule, Mapping):
        return "?"
    if depth > _DEPTH:
        return "…"
    if "Condition" in rule:
        condition = rule["Condition"]
        if isinstance(condition, str):
            return _strip_jsonata(condition)
        return str(condition).lower() if isinstance(condition, bool) else "?"
    for word in ("And", "Or"):
        parts = rule.get(word)
        if isinstance(parts, list):
            joiner = f" {word.lower()} "
            texts = [_wrapped(part, depth + 1) for part in parts[:8]]
            return joiner.join(texts) if texts else word.lower()
    if "Not" in rule:
        return "not " + _wrapped(rule["Not"], depth + 1)
    variable = rule.get("Variable")
    subject = variable if isinstance(variable, str) else "?"
    for key, value in rule.items():
        if not isinstance(key, str) or key in ("Variable", "Next", "Comment", "Assign", "Output"):
            continue
        return f"{subject} {_comparison(key, value)}"
    return subject


def _wrapped(rule: Any, depth: int) -> str:
    text = _rule_text(rule, depth)
    return f"({text})" if " and " in text or " or " in text else text


def _comparison(key: str, value: Any) -> str:
    if key in _TESTS:
        negation = "" if value is True else "not "
        return f"is {negation}{_TESTS[key]}"
    if key == "StringMatches":
        return f"matches {_literal(value)}"
    base, is_path = (key[:-4], True) if key.endswith("Path") else (key, False)
    for kind in _KINDS:
        if base.startswith(kind) and base[len(kind) :] in _SYMBOLS:
            operand = str(value) if is_path and isinstance(value, str) else _literal(value)
            return f"{_SYMBOLS[base[len(kind) :]]} {operand}"
    return f"{key} {_literal(value)}"


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value[:MAX_LABEL] + '"'
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    return "?"


def _strip_jsonata(text: str) -> str:
    inner = text.strip()
    if inner.startswith("{%") and inner.endswith("%}"):
        inner = inner[2:-2].strip()
    return inner[: MAX_LABEL * 2]
