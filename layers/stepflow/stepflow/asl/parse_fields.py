"""Field readers: how each state field is checked and turned into node attributes.

A reader takes the state (:class:`StateInput`) and a field name, reports any
problem with the value and returns the node attributes it sets. The tables in
:mod:`stepflow.asl.parse_states` say which readers each state type uses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from stepflow.asl.parse_choice import parse_choices
from stepflow.asl.parse_context import Context, is_jsonata, pointer
from stepflow.asl.parse_handlers import parse_catch, parse_retry
from stepflow.asl.states.base import QueryLanguage

_RESOURCE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")
_LABEL_FORBIDDEN = re.compile(r"[\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class StateInput:
    """The raw JSON of one state and where it sits."""

    ctx: Context
    raw: Mapping[str, Any]
    loc: str
    name: str
    type: str
    language: QueryLanguage
    machine_id: str

    def at(self, key: str) -> str:
        """The pointer of field ``key`` of this state."""
        return pointer(self.loc, key)


Reader = Callable[[StateInput, str], dict[str, Any]]
"""Reads field ``key`` of a state into node attributes."""


def attr(name: str, read: Callable[[StateInput, str], Any]) -> Reader:
    """A reader that stores what ``read`` returns in node attribute ``name``."""

    def reader(s: StateInput, key: str) -> dict[str, Any]:
        value = read(s, key)
        return {} if value is _SKIP else {name: value}

    return reader


_SKIP: Any = object()


# --- value readers ----------------------------------------------------------------------


def read_string(s: StateInput, key: str) -> Any:
    """A string field (``Comment``, ``Next``, ``Default``)."""
    value = s.ctx.string(s.raw[key], s.at(key), key)
    return _SKIP if value is None else value


def read_end(s: StateInput, key: str) -> Any:
    """``End``: a boolean."""
    return s.ctx.boolean(s.raw[key], s.at(key), key)


def read_io_path(s: StateInput, key: str) -> Any:
    """``InputPath``/``OutputPath``: a path, or ``null`` (``None``)."""
    return s.ctx.path(s.raw[key], s.at(key), key, nullable=True)


def read_reference_path(s: StateInput, key: str) -> Any:
    """A ``…Path`` field that must be a reference path."""
    return s.ctx.path(s.raw[key], s.at(key), key, reference=True)


def read_result_path(s: StateInput, key: str) -> Any:
    """``ResultPath``: a reference path into the input, or ``null`` (``None``)."""
    return s.ctx.path(s.raw[key], s.at(key), key, nullable=True, writable=True)


def read_dynamic(s: StateInput, key: str) -> Any:
    """``ErrorPath``/``CausePath``: a reference path or an intrinsic call, kept as text."""
    return s.ctx.dynamic(s.raw[key], s.at(key), key)


def read_template(s: StateInput, key: str) -> Any:
    """``Parameters``: a payload template (any JSON)."""
    return s.ctx.template(s.raw[key], s.at(key), key, require_object=False)


def read_template_object(s: StateInput, key: str) -> Any:
    """``ResultSelector``: a payload template that must be an object."""
    return s.ctx.template(s.raw[key], s.at(key), key, require_object=True)


def read_raw(s: StateInput, key: str) -> Any:
    """Any JSON, kept raw (its JSONata expressions are checked in JSONata mode)."""
    if s.language == "JSONata":
        s.ctx.jsonata(s.raw[key], s.at(key), key)
    return s.raw[key]


def read_object_or_expression(s: StateInput, key: str) -> Any:
    """``Arguments``: an object or a JSONata expression, kept raw."""
    value = s.raw[key]
    if not isinstance(value, Mapping) and not is_jsonata(value):
        s.ctx.error(s.at(key), f"The value of '{key}' must be an object or a JSONata expression")
    return read_raw(s, key)


def read_items(s: StateInput, key: str) -> Any:
    """``Items``: an array or a JSONata expression, kept raw."""
    value = s.raw[key]
    if not isinstance(value, list) and not is_jsonata(value):
        s.ctx.error(s.at(key), f"The value of '{key}' must be an array or a JSONata expression")
    return read_raw(s, key)


def read_assign(s: StateInput, key: str) -> Any:
    """``Assign``: an object of variables."""
    return s.ctx.assign(s.raw[key], s.at(key), s.language)


def read_credentials(s: StateInput, key: str) -> Any:
    """``Credentials``: ``{"RoleArn": ...}`` (``RoleArn.$`` in JSONPath), kept raw.

    AWS refuses a ``Credentials`` without a role, and any other field in it.
    """
    value = s.ctx.obj(s.raw[key], s.at(key), key)
    if value is None:
        return read_raw(s, key)
    allowed = ("RoleArn", "RoleArn.$") if s.language == "JSONPath" else ("RoleArn",)
    for field in value:
        if field not in allowed:
            s.ctx.unsupported(s.at(key), field)
    if not any(field in value for field in allowed):
        s.ctx.error(s.at(key), "The field 'RoleArn' is required but was missing")
    if s.language == "JSONPath":
        s.ctx.template(value, s.at(key), key, require_object=True)
    return read_raw(s, key)


def read_resource(s: StateInput, key: str) -> Any:
    """``Resource``: an ARN or URI string."""
    value = s.ctx.string(s.raw[key], s.at(key), key)
    if value is not None and _RESOURCE.fullmatch(value) is None:
        s.ctx.error(
            s.at(key), f"Invalid resource (not an ARN or URI): {value!r}", "INVALID_RESOURCE"
        )
    return value or ""


def int_reader(minimum: int, maximum: int | None = None) -> Callable[[StateInput, str], Any]:
    """A reader of whole numbers in ``[minimum, maximum]`` (or JSONata expressions)."""

    def read(s: StateInput, key: str) -> Any:
        value = s.raw[key]
        if s.language == "JSONata" and is_jsonata(value):
            return read_raw(s, key)
        if maximum is None:
            return s.ctx.integer(value, s.at(key), key, minimum)
        return s.ctx.integer(value, s.at(key), key, minimum, maximum)

    return read


def read_percentage(s: StateInput, key: str) -> Any:
    """``ToleratedFailurePercentage``: a number in [0, 100] (or a JSONata expression)."""
    value = s.raw[key]
    if s.language == "JSONata" and is_jsonata(value):
        return read_raw(s, key)
    return s.ctx.number(value, s.at(key), key, 0, 100)


def read_timestamp(s: StateInput, key: str) -> Any:
    """``Timestamp``: an RFC 3339 timestamp (or a JSONata expression)."""
    value = s.raw[key]
    if s.language == "JSONata" and is_jsonata(value):
        return read_raw(s, key)
    return s.ctx.timestamp(value, s.at(key), key)


def read_text(s: StateInput, key: str) -> Any:
    """``Error``/``Cause``: a string (in JSONata mode possibly an expression)."""
    value = s.ctx.string(s.raw[key], s.at(key), key)
    return read_raw(s, key) if value is not None else None


def read_retry(s: StateInput, key: str) -> Any:
    """``Retry``: the retriers."""
    return parse_retry(s.ctx, s.raw[key], s.at(key))


def read_catch(s: StateInput, key: str) -> Any:
    """``Catch``: the catchers."""
    return parse_catch(s.ctx, s.raw[key], s.at(key), s.language)


def read_choices(s: StateInput, key: str) -> Any:
    """``Choices``: the rules of a Choice state."""
    return parse_choices(s.ctx, s.raw[key], s.at(key), s.language)


def read_branches(s: StateInput, key: str) -> Any:
    """``Branches``: one machine per branch, with ids ``<parent>/<state>/<i>``."""
    value = s.raw[key]
    if not isinstance(value, list) or not value:
        s.ctx.error(s.at(key), "The value of 'Branches' must be a non-empty array of machines")
        return ()
    return tuple(
        s.ctx.parse_machine(
            s.ctx, branch, pointer(s.at(key), i), f"{s.machine_id}/{s.name}/{i}", frozenset()
        )
        for i, branch in enumerate(value)
    )


def read_processor(s: StateInput, key: str) -> dict[str, Any]:
    """``ItemProcessor`` (or ``Iterator``): the item machine and its mode."""
    raw = s.raw[key]
    machine = s.ctx.parse_machine(
        s.ctx, raw, s.at(key), f"{s.machine_id}/{s.name}", frozenset({"ProcessorConfig"})
    )
    attrs: dict[str, Any] = {"item_processor": machine, "processor_mode": "INLINE"}
    config = raw.get("ProcessorConfig") if isinstance(raw, Mapping) else None
    if config is not None:
        attrs.update(_processor_config(s.ctx, config, pointer(s.at(key), "ProcessorConfig")))
    return attrs


def _processor_config(ctx: Context, value: Any, loc: str) -> dict[str, str]:
    """``ProcessorConfig``: ``Mode`` and, for a distributed Map, ``ExecutionType``."""
    config = ctx.obj(value, loc, "ProcessorConfig")
    if config is None:
        return {}
    attrs: dict[str, str] = {}
    for key, item in config.items():
        if key == "Mode":
            mode = ctx.one_of(item, pointer(loc, key), key, ("INLINE", "DISTRIBUTED"))
            if mode is not None:
                attrs["processor_mode"] = mode
        elif key == "ExecutionType":
            kind = ctx.one_of(item, pointer(loc, key), key, ("STANDARD", "EXPRESS"))
            if kind is not None:
                attrs["execution_type"] = kind
        else:
            ctx.unsupported(loc, key)
    if attrs.get("processor_mode") == "DISTRIBUTED" and "ExecutionType" not in config:
        ctx.error(loc, "'ExecutionType' is required when 'Mode' is 'DISTRIBUTED'")
    return attrs


def read_item_selector(s: StateInput, key: str) -> dict[str, Any]:
    """``ItemSelector`` (or a Map's legacy ``Parameters``)."""
    value = s.raw[key]
    if s.language == "JSONata":
        if not isinstance(value, Mapping) and not is_jsonata(value):
            s.ctx.error(
                s.at(key), f"The value of '{key}' must be an object or a JSONata expression"
            )
        return {"item_selector_raw": read_raw(s, key)}
    return {"item_selector": read_template_object(s, key), "item_selector_raw": value}


def read_label(s: StateInput, key: str) -> Any:
    """``Label``: a unique, short name without special characters."""
    value = s.ctx.string(s.raw[key], s.at(key), key)
    if value is None:
        return None
    if not 0 < len(value) <= 40 or _LABEL_FORBIDDEN.search(value):
        s.ctx.error(s.at(key), f"Invalid label name: {value!r}", "INVALID_LABEL_NAME")
    elif value in s.ctx.labels:
        s.ctx.error(s.at(key), f"Duplicate label name: {value!r}", "DUPLICATE_LABEL_NAME")
    else:
        s.ctx.labels[value] = s.at(key)
    return value
