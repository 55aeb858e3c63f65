"""Execution state to and from plain JSON, so a durable log can store it between decisions.

Format 2 leaves out of each frame (and of its fanout) every field still at its
default, a frame's ``id`` (its key in ``frames``) and its ``effective`` input
when that is its ``input`` (the same object: no InputPath or Parameters; a
frame without ``effective`` reads it as its ``input``): a durable log rewrites
the state at every commit, and most of a frame is defaults. The execution-level
fields are all written (some readers look at them in the encoded dict, e.g.
``status``, ``output``, ``redrive_count``). Format 1 (every field) still decodes.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any

from stepflow.engine.model import ExecutionState, Fanout, Frame

FORMAT = 2
"""Version of the encoding; bump it when the shape of execution state changes."""

READABLE = (1, 2)
"""The format versions :func:`decode_state` reads."""


def _defaults(cls: type) -> dict[str, Any]:
    """The fields of dataclass ``cls`` that have a default, and the default's value."""
    found: dict[str, Any] = {}
    for f in fields(cls):
        if f.default is not MISSING:
            found[f.name] = f.default
        elif f.default_factory is not MISSING:
            found[f.name] = f.default_factory()
    return found


_FRAME_DEFAULTS = _defaults(Frame)
_FANOUT_DEFAULTS = _defaults(Fanout)


def _is_default(value: Any, default: Any) -> bool:
    """Whether ``value`` may be left out: its field's default, of the very same type.

    (``False`` is not left out for a default of ``0``, nor ``0`` for ``0.0``;
    an empty list stands for an empty tuple, as the encoding writes tuples as lists.)
    """
    if isinstance(default, tuple | list | dict):
        return isinstance(value, tuple | list | dict) and not value and not default
    return type(value) is type(default) and value == default


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
    data: dict[str, Any] = {}
    for name in Frame.__slots__:
        value = getattr(frame, name)
        if name == "effective":
            if value is frame.input:
                continue
        elif name == "id" or (
            name in _FRAME_DEFAULTS and _is_default(value, _FRAME_DEFAULTS[name])
        ):
            continue
        if name == "retries":
            value = list(value)
        elif name == "variables":
            value = dict(value)
        elif name == "fanout":
            value = _encode_fanout(value)
        data[name] = value
    return data


def _encode_fanout(fan: Fanout) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name in Fanout.__slots__:
        value = getattr(fan, name)
        if name in _FANOUT_DEFAULTS and _is_default(value, _FANOUT_DEFAULTS[name]):
            continue
        data[name] = dict(value) if name == "children" else value
    for name in ("results", "done", "failed"):
        if name in data:
            data[name] = list(data[name])
    return data


def decode_state(data: dict[str, Any]) -> ExecutionState:
    """Rebuild the state written by :func:`encode_state` (either format).

    Raises ``ValueError`` for an encoding of another format version.
    """
    if data.get("format") not in READABLE:
        raise ValueError(f"unsupported execution state format {data.get('format')!r}")
    fields_ = {k: v for k, v in data.items() if k != "format"}
    same = data["format"] >= 2  # an absent ``effective`` is the input
    fields_["frames"] = {key: _frame(key, value, same) for key, value in data["frames"].items()}
    fields_["timers"] = {key: (ref[0], ref[1]) for key, ref in data["timers"].items()}
    fields_["ready"] = list(data["ready"])
    fields_["tasks"] = dict(data["tasks"])
    return ExecutionState(**fields_)


def _frame(key: str, data: dict[str, Any], same: bool) -> Frame:
    found = dict(data)
    found.setdefault("id", key)
    if same and "effective" not in data:
        found["effective"] = data.get("input")
    found["retries"] = tuple(data.get("retries", ()))
    if "variables" in data:
        found["variables"] = dict(data["variables"])
    fan = data.get("fanout")
    if fan is not None:
        fan = dict(fan)
        fan.pop("remote", None)  # the former child-execution path (a map run now)
        fan["children"] = {int(k): v for k, v in fan.get("children", {}).items()}
        for name in ("results", "done", "failed", "items"):
            if name in fan:
                fan[name] = list(fan[name])
        found["fanout"] = Fanout(**fan)
    return Frame(**found)
