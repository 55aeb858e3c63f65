"""The Wait state and the other fields that hold a duration (TimeoutSeconds, ...)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from stepflow.asl.states.base import State
from stepflow.asl.states.wait import WaitState
from stepflow.data.jsonata import is_expression
from stepflow.data.jsonpath import Path, PathNotFoundError
from stepflow.engine import dataflow
from stepflow.engine.choice import parse_timestamp
from stepflow.engine.model import Frame
from stepflow.errors import StatesError, StatesErrorName

if TYPE_CHECKING:
    from stepflow.engine.step_context import StepContext


def run_wait(d: StepContext, frame: Frame, node: WaitState) -> None:
    """Enter a Wait state: arm a timer for its deadline; the timer exits the state."""
    effective = dataflow.effective_input(d, frame, node)
    deadline = _deadline(d, frame, node, effective)
    output, assigned = dataflow.passthrough_output(
        d, frame, node, effective, output=node.output, assign=node.assign
    )
    frame.effective = output
    frame.pending_assign = assigned
    frame.phase = "wait"
    frame.timer_id = d.start_timer(frame, "wait", deadline)


def _deadline(d: StepContext, frame: Frame, node: WaitState, effective: Any) -> float:
    jsonata = dataflow.is_jsonata(node)
    if node.seconds is not None:
        value = node.seconds
        if jsonata and is_expression(value):
            value = dataflow.evaluate(d, frame, value, "Seconds")
            if not _is_whole(value) or value < 0:
                raise StatesError(
                    StatesErrorName.QUERY_EVALUATION_ERROR,
                    f"The Seconds field must be a non-negative integer: {_show(value)}",
                )
        return d.now + int(value)
    if node.seconds_path is not None:
        value = _read(d, frame, node.seconds_path, effective)
        described = f"{node.seconds_path.text} == {_show(value)}"
        if not _is_whole(value):
            raise StatesError(
                StatesErrorName.RUNTIME,
                f"The SecondsPath parameter cannot be parsed as a long value: {described}",
            )
        if value < 0:
            raise StatesError(
                StatesErrorName.RUNTIME,
                f"The SecondsPath parameter references a negative value: {described}",
            )
        return d.now + int(value)
    if node.timestamp is not None:
        value = node.timestamp
        if jsonata and is_expression(value):
            value = dataflow.evaluate(d, frame, value, "Timestamp")
        stamp = parse_timestamp(value)
        if stamp is None:
            raise StatesError(
                StatesErrorName.QUERY_EVALUATION_ERROR if jsonata else StatesErrorName.RUNTIME,
                "The Timestamp field cannot be parsed as an ISO-8601 extended offset date-time "
                f"format string: {_show(value)}",
            )
        return stamp.timestamp()
    assert node.timestamp_path is not None
    value = _read(d, frame, node.timestamp_path, effective)
    stamp = parse_timestamp(value)
    if stamp is None:
        raise StatesError(
            StatesErrorName.RUNTIME,
            "The TimestampPath parameter does not reference a valid ISO-8601 extended "
            f"offset date-time format string: {node.timestamp_path.text} == {_show(value)}",
        )
    return stamp.timestamp()


def seconds(
    d: StepContext, frame: Frame, node: State, literal: Any, path: Path | None, field: str
) -> int | None:
    """A positive whole number of seconds from a literal, a path or a JSONata expression."""
    if path is not None:
        value = _read(d, frame, path, frame.input)
        if not _is_whole(value) or value <= 0:
            raise StatesError(
                StatesErrorName.RUNTIME,
                f"The {field}Path parameter cannot be parsed as a long value: "
                f"{path.text} == {_show(value)}",
            )
        return int(value)
    if literal is None:
        return None
    if dataflow.is_jsonata(node) and is_expression(literal):
        value = dataflow.evaluate(d, frame, literal, field)
        if not _is_whole(value) or value <= 0:
            raise StatesError(
                StatesErrorName.QUERY_EVALUATION_ERROR,
                f"The {field} field must be a positive integer: {_show(value)}",
            )
        return int(value)
    return int(literal)


def _read(d: StepContext, frame: Frame, path: Path, value: Any) -> Any:
    try:
        return dataflow.scope(d, frame, value).read(path)
    except PathNotFoundError:
        raise StatesError(
            StatesErrorName.RUNTIME,
            f"Invalid path '{path.text}' : No results for path: {path.normalized}",
        ) from None


MAX_SECONDS = 99_999_999
"""The largest duration ASL accepts (about three years), literal or from a path."""


def _is_whole(value: Any) -> bool:
    if isinstance(value, float) and value.is_integer():
        return value <= MAX_SECONDS
    return isinstance(value, int) and not isinstance(value, bool) and value <= MAX_SECONDS


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
