"""Execution state to and from plain JSON, so a durable log can store it between decisions."""

from __future__ import annotations

from typing import Any

from stepflow.engine.model import ExecutionState, Fanout, Frame

FORMAT = 1
"""Version of the encoding; bump it when the shape of execution state changes."""


def encode_state(state: ExecutionState) -> dict[str, Any]:
    """The state as a JSON-ready dict (``json.dumps`` accepts it as it is).

    Containers of the engine's own bookkeeping are copied; JSON payloads
    (inputs, outputs, items, variables' values) are shared, as everywhere in
    StepFlow, since nothing mutates them in place. (``dataclasses.asdict``
    would deep-copy every payload on every commit.)
    """
    data: dict[str, Any] = {name: getattr(state, name) for name in ExecutionState.__slots__}
    data["frames"] = {key: _encode_frame(frame) for key, frame in state.frames.items()}
    data["ready"] = list(state.ready)
    data["tasks"] = dict(state.tasks)
    data["timers"] = {key: list(ref) for key, ref in state.timers.items()}
    data["children"] = dict(state.children)
    data["format"] = FORMAT
    return data


def _encode_frame(frame: Frame) -> dict[str, Any]:
    data: dict[str, Any] = {name: getattr(frame, name) for name in Frame.__slots__}
    data["retries"] = list(frame.retries)
    data["variables"] = dict(frame.variables)
    fan = frame.fanout
    if fan is not None:
        encoded = {name: getattr(fan, name) for name in Fanout.__slots__}
        encoded["results"] = list(fan.results)
        encoded["done"] = list(fan.done)
        encoded["children"] = dict(fan.children)
        encoded["failed"] = list(fan.failed)
        data["fanout"] = encoded
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
        fan.pop("remote", None)  # the former child-execution path (a map run now)
        fan["children"] = {int(k): v for k, v in fan["children"].items()}
        fields["fanout"] = Fanout(**fan)
    return Frame(**fields)
