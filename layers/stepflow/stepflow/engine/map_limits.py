"""Map's numeric limits (MaxConcurrency, ToleratedFailure*, MaxItems...): literal, path, JSONata.

A literal was range-checked when the definition was validated; a value read
through a path or computed by JSONata is checked here, with AWS's causes:

- a number, or a string holding one (``"2"``, as an ``Assign`` makes it), is
  accepted; a string of any other shape (``"2.5"`` for an integer field,
  ``"NoNumber"``), a bool, an object or a fractional number for an integer
  field is "not a valid integer/float";
- out of range, each field fails with the cause AWS gives it
  (``ToleratedFailureCount cannot be negative.``, ...).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stepflow.asl.states.base import MISSING, State
from stepflow.asl.states.map import MapState
from stepflow.data.jsonata import is_expression
from stepflow.data.jsonpath import Path, PathNotFoundError
from stepflow.engine import dataflow
from stepflow.engine.model import Frame
from stepflow.errors import StatesError, StatesErrorName

if TYPE_CHECKING:
    from stepflow.engine.step_context import EvalContext

_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")
_DECIMAL = re.compile(r"\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*")


@dataclass(frozen=True)
class _Range:
    """The accepted range of one field and how AWS fails a value outside it."""

    maximum: float | None
    cause: str
    """The cause; ``{value}`` stands for the value as AWS quotes it."""
    error: str | None = None
    """The error name; None: States.Runtime (States.QueryEvaluationError in JSONata)."""
    type_error: str | None = None
    """The error name of a value that is not a number; None: as ``error``'s default."""


_RANGES: dict[str, _Range] = {
    "MaxConcurrency": _Range(
        None, "Expected non-negative integer for MaxConcurrency, got '{value}' instead."
    ),
    "ToleratedFailureCount": _Range(None, "ToleratedFailureCount cannot be negative."),
    "ToleratedFailurePercentage": _Range(
        100, "ToleratedFailurePercentage must be between 0 and 100."
    ),
    # AWS fails a negative MaxItemsPath inside the map run (after MapRunStarted).
    "MaxItems": _Range(
        None,
        "field MaxItems must be positive",
        StatesErrorName.ITEM_READER_FAILED,
        StatesErrorName.ITEM_READER_FAILED,
    ),
}


def number(
    d: EvalContext,
    frame: Frame,
    node: State,
    literal: Any,
    path: Path | None,
    field: str,
    *,
    integer: bool,
) -> Any:
    """A Map limit from a literal, a reference path or a JSONata expression.

    Returns None when the field is absent, else an ``int`` (``integer``) or a
    number; raises :class:`StatesError` with AWS's error and cause otherwise.
    """
    kind = "integer" if integer else "float"
    if path is None:
        if literal is MISSING or literal is None:
            return None
        if not (dataflow.is_jsonata(node) and is_expression(literal)):
            return literal
        raw = dataflow.evaluate(d, frame, literal, field)
        value = coerce(raw, integer)
        if value is None:
            raise StatesError(
                StatesErrorName.QUERY_EVALUATION_ERROR,
                f'The {field} field refers to value "{show(raw)}" which is not a valid {kind}',
            )
        check_range(value, field, StatesErrorName.QUERY_EVALUATION_ERROR)
        return value
    try:
        raw = dataflow.scope(d, frame, frame.input).read(path)
    except PathNotFoundError:
        raise StatesError(
            StatesErrorName.RUNTIME,
            f"Invalid path '{path.text}' : No results for path: {path.normalized}",
        ) from None
    value = coerce(raw, integer)
    if value is None:
        rule = _RANGES.get(field)
        if rule is not None and rule.type_error is not None:
            raise StatesError(
                rule.type_error,
                f"The {field}Path field refers to value '{show(raw)}' which is not a valid "
                f"{kind}: {path.text}",
            )
        raise StatesError(
            StatesErrorName.RUNTIME,
            f'The {field}Path field refers to value "{show(raw)}" which is not a valid '
            f"{kind}: {path.text}",
        )
    check_range(value, field, StatesErrorName.RUNTIME)
    return value


def coerce(value: Any, integer: bool) -> int | float | None:
    """``value`` as a number of the kind asked for, or None when it is not one.

    A JSON number qualifies (a bool does not; a fraction does not for an
    integer); so does a string holding a decimal number of that kind, which is
    what a variable assigned ``"2"`` holds.
    """
    if isinstance(value, str):
        if _INTEGER.fullmatch(value):
            return int(value)
        if integer or not _DECIMAL.fullmatch(value):
            return None
        parsed = float(value)
        return parsed if parsed == parsed and abs(parsed) != float("inf") else None
    if numeric(value, integer):
        return value  # type: ignore[no-any-return]
    return None


def check_range(value: float, field: str, default_error: str) -> None:
    """Fail as AWS does when ``field``'s ``value`` is out of its range.

    ``default_error`` names the failure of fields whose rule has no error name
    of its own (States.Runtime for a path, States.QueryEvaluationError for JSONata).
    """
    rule = _RANGES.get(field) or _Range(None, f"{field} cannot be negative.")
    if value < 0 or (rule.maximum is not None and value > rule.maximum):
        raise StatesError(rule.error or default_error, rule.cause.format(value=show(value)))


def numeric(value: Any, integer: bool) -> bool:
    """Whether ``value`` is a JSON number of the kind asked for (a bool is not)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (not integer and isinstance(value, float))


def show(value: Any) -> str:
    """``value`` as Step Functions quotes it in an error message."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def tolerance(d: EvalContext, frame: Frame, node: MapState) -> tuple[Any, Any]:
    """A Map's ToleratedFailureCount and ToleratedFailurePercentage (None where unset)."""
    count = number(
        d,
        frame,
        node,
        node.tolerated_failure_count,
        node.tolerated_failure_count_path,
        "ToleratedFailureCount",
        integer=True,
    )
    pct = number(
        d,
        frame,
        node,
        node.tolerated_failure_percentage,
        node.tolerated_failure_percentage_path,
        "ToleratedFailurePercentage",
        integer=False,
    )
    return count, pct
