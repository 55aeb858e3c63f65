"""The Wait state and the other fields that hold a duration (TimeoutSeconds, ...)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from stepflow.asl.states.wait import WaitState
from stepflow.data.jsonpath import Path, PathNotFoundError
from stepflow.engine.choice import parse_timestamp
from stepflow.engine.model import Frame
from stepflow.errors import StatesError, StatesErrorName

if TYPE_CHECKING:
    from stepflow.engine.decide import Decider


def run_wait(d: Decider, frame: Frame, node: WaitState) -> None:
    """Enter a Wait state: arm a timer for its deadline; the timer exits the state."""
    effective = d.io_select(node.input_path, frame, frame.input)
    if node.seconds is not None:
        deadline = d.now + int(node.seconds)
    elif node.seconds_path is not None:
        value = _read(d, frame, node.seconds_path, effective)
        if not _is_whole(value) or value < 0:
            raise StatesError(
                StatesErrorName.RUNTIME,
                "The SecondsPath parameter cannot be parsed as a long value: "
                f"{node.seconds_path.text} == {_show(value)}",
            )
        deadline = d.now + int(value)
    elif node.timestamp is not None:
        deadline = _epoch(node.timestamp)
    else:
        assert node.timestamp_path is not None
        value = _read(d, frame, node.timestamp_path, effective)
        stamp = parse_timestamp(value)
        if stamp is None:
            raise StatesError(
                StatesErrorName.RUNTIME,
                "The TimestampPath parameter does not reference a valid ISO-8601 extended "
                f"offset date-time format string: {node.timestamp_path.text} == {_show(value)}",
            )
        deadline = stamp.timestamp()
    frame.effective = d.io_select(node.output_path, frame, effective)
    frame.phase = "wait"
    frame.timer_id = d.start_timer(frame, "wait", deadline)


def seconds_field(
    d: Decider, frame: Frame, literal: Any, path: Path | None, field: str
) -> int | None:
    """A positive whole number of seconds from a literal or a reference path."""
    if path is None:
        return int(literal) if literal is not None else None
    value = _read(d, frame, path, frame.input)
    if not _is_whole(value) or value <= 0:
        raise StatesError(
            StatesErrorName.RUNTIME,
            f"The {field} parameter cannot be parsed as a long value: "
            f"{path.text} == {_show(value)}",
        )
    return int(value)


def _read(d: Decider, frame: Frame, path: Path, value: Any) -> Any:
    try:
        return d.scope(frame, value).read(path)
    except PathNotFoundError:
        raise StatesError(
            StatesErrorName.RUNTIME,
            f"Invalid path '{path.text}' : No results for path: {path.normalized}",
        ) from None


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _epoch(text: str) -> float:
    stamp = parse_timestamp(text)
    if stamp is None:
        raise StatesError(StatesErrorName.RUNTIME, f"Invalid timestamp: {text}")
    return stamp.timestamp()


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
