"""Execution state to and from plain JSON, so a durable log can store it between decisions."""

from __future__ import annotations

import dataclasses
from typing import Any

from stepflow.engine.model import ExecutionState, Fanout, Frame

FORMAT = 1
"""Version of the encoding; bump it when the shape of execution state changes."""


def encode_state(state: ExecutionState) -> dict[str, Any]:
    """The state as a JSON-ready dict (``json.dumps`` accepts it as it is)."""
    data = dataclasses.asdict(state)
    data["format"] = FORMAT
    return data


def decode_state(data: dict[str, Any]) -> ExecutionState:
    """Rebuild the state written by :func:`encode_state`.

    Raises ``ValueError`` for an encoding of another format version.
    """
    if data.get("format") != FORMAT:
        raise ValueError(f"unsupported execution state format {data.get('format')!r}")
    fields = {k: v for k, v in data.items() if k != "format"}
    fields["frames"] = {key: _frame(value) for key, value in data["frames"].items()}
    fields["timers"] = {key: (ref[0], ref[1]) for key, ref in data["timers"].items()}
    fields["ready"] = list(data["ready"])
    fields["tasks"] = dict(data["tasks"])
    return ExecutionState(**fields)


def _frame(data: dict[str, Any]) -> Frame:
    fields = dict(data)
    fields["retries"] = tuple(data["retries"])
    fan = data.get("fanout")
    if fan is not None:
        fan = dict(fan)
        fan["children"] = {int(k): v for k, v in fan["children"].items()}
        fields["fanout"] = Fanout(**fan)
    return Frame(**fields)
