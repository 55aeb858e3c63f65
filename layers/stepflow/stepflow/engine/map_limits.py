"""Map's numeric limits (MaxConcurrency, ToleratedFailure*): a literal, a path or JSONata."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from stepflow.asl.states.base import MISSING, State
from stepflow.data.jsonata import is_expression
from stepflow.data.jsonpath import Path, PathNotFoundError
from stepflow.engine import dataflow
from stepflow.engine.model import Frame
from stepflow.errors import StatesError, StatesErrorName

if TYPE_CHECKING:
    from stepflow.engine.step_context import EvalContext


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
    """A Map limit from a literal, a reference path or a JSONata expression."""
    kind = "integer" if integer else "float"
    if path is None:
        if literal is MISSING or literal is None:
            return None
        if not (dataflow.is_jsonata(node) and is_expression(literal)):
            return literal
        value = dataflow.evaluate(d, frame, literal, field)
        if not numeric(value, integer) or value < 0:
            raise StatesError(
                StatesErrorName.QUERY_EVALUATION_ERROR,
                f'The {field} field refers to value "{show(value)}" which is not a valid {kind}',
            )
        return value
    try:
        value = dataflow.scope(d, frame, frame.input).read(path)
    except PathNotFoundError:
        raise StatesError(
            StatesErrorName.RUNTIME,
            f"Invalid path '{path.text}' : No results for path: {path.normalized}",
        ) from None
    if not numeric(value, integer) or value < 0:
        raise StatesError(
            StatesErrorName.RUNTIME,
            f'The {field}Path field refers to value "{show(value)}" which is not a valid '
            f"{kind}: {path.text}",
        )
    return value


def numeric(value: Any, integer: bool) -> bool:
    """Whether ``value`` is a JSON number of the kind asked for (a bool is not)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (not integer and isinstance(value, float))


def show(value: Any) -> str:
    """``value`` as Step Functions quotes it in an error message."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
