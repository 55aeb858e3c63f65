"""Building state nodes from their JSON, driven by a table of field readers.

Each state type lists the fields it accepts and how to read each one into
node attributes. A field that the type does not accept, or that belongs to the
other query language, is reported; the cross-field rules (required fields,
mutually exclusive pairs, ``Next``/``End``) run after the fields are read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from stepflow.asl.machine import Machine
from stepflow.asl.parse_context import Context, pointer
from stepflow.asl.parse_fields import (
    Reader,
    StateInput,
    attr,
    int_reader,
    read_assign,
    read_branches,
    read_catch,
    read_choices,
    read_credentials,
    read_dynamic,
    read_end,
    read_io_path,
    read_item_selector,
    read_items,
    read_label,
    read_object_or_expression,
    read_percentage,
    read_processor,
    read_raw,
    read_reference_path,
    read_resource,
    read_result_path,
    read_retry,
    read_string,
    read_template,
    read_template_object,
    read_text,
    read_timestamp,
)
from stepflow.asl.parse_map import read_item_batcher, read_item_reader, read_result_writer
from stepflow.asl.states.base import QueryLanguage, State
from stepflow.asl.states.choice import ChoiceState
from stepflow.asl.states.map import MapState
from stepflow.asl.states.parallel import ParallelState
from stepflow.asl.states.simple import FailState, PassState, SucceedState
from stepflow.asl.states.task import TaskState
from stepflow.asl.states.wait import WaitState

QUERY_LANGUAGES: tuple[QueryLanguage, ...] = ("JSONPath", "JSONata")

JSONPATH_ONLY = frozenset(
    {
        "InputPath",
        "OutputPath",
        "Parameters",
        "ResultSelector",
        "ResultPath",
        "Result",
        "ItemsPath",
        "TimeoutSecondsPath",
        "HeartbeatSecondsPath",
        "SecondsPath",
        "TimestampPath",
        "ErrorPath",
        "CausePath",
        "MaxConcurrencyPath",
        "ToleratedFailurePercentagePath",
        "ToleratedFailureCountPath",
    }
)
"""Fields a JSONata state may not use."""

JSONATA_ONLY = frozenset({"Arguments", "Output", "Items"})
"""Fields a JSONPath state may not use."""


# --- the field tables -------------------------------------------------------------------

_COMMON: dict[str, Reader] = {"Comment": attr("comment", read_string)}
_IO: dict[str, Reader] = {
    "InputPath": attr("input_path", read_io_path),
    "OutputPath": attr("output_path", read_io_path),
    "Output": attr("output", read_raw),
}
_FLOW: dict[str, Reader] = {
    "Next": attr("next", read_string),
    "End": attr("end", read_end),
    "Assign": attr("assign", read_assign),
}
_RESULT: dict[str, Reader] = {
    "ResultSelector": attr("result_selector", read_template_object),
    "ResultPath": attr("result_path", read_result_path),
    "Retry": attr("retry", read_retry),
    "Catch": attr("catch", read_catch),
}
_PAYLOAD: dict[str, Reader] = {
    "Parameters": attr("parameters", read_template),
    "Arguments": attr("arguments", read_object_or_expression),
}

_PASS = {
    **_COMMON,
    **_IO,
    **_FLOW,
    "Parameters": attr("parameters", read_template),
    "Result": attr("result", read_raw),
    "ResultPath": attr("result_path", read_result_path),
}
_TASK = {
    **_COMMON,
    **_IO,
    **_FLOW,
    **_PAYLOAD,
    **_RESULT,
    "Resource": attr("resource", read_resource),
    "TimeoutSeconds": attr("timeout_seconds", int_reader(1)),
    "TimeoutSecondsPath": attr("timeout_seconds_path", read_reference_path),
    "HeartbeatSeconds": attr("heartbeat_seconds", int_reader(1)),
    "HeartbeatSecondsPath": attr("heartbeat_seconds_path", read_reference_path),
    "Credentials": attr("credentials", read_credentials),
}
_CHOICE = {
    **_COMMON,
    **_IO,
    "Choices": attr("choices", read_choices),
    "Default": attr("default", read_string),
    "Assign": attr("assign", read_assign),
}
_WAIT = {
    **_COMMON,
    **_IO,
    **_FLOW,
    "Seconds": attr("seconds", int_reader(0)),
    "SecondsPath": attr("seconds_path", read_reference_path),
    "Timestamp": attr("timestamp", read_timestamp),
    "TimestampPath": attr("timestamp_path", read_reference_path),
}
_SUCCEED = {**_COMMON, **_IO}
_FAIL = {
    **_COMMON,
    "Error": attr("error", read_text),
    "ErrorPath": attr("error_path", read_dynamic),
    "Cause": attr("cause", read_text),
    "CausePath": attr("cause_path", read_dynamic),
}
_PARALLEL = {
    **_COMMON,
    **_IO,
    **_FLOW,
    **_PAYLOAD,
    **_RESULT,
    "Branches": attr("branches", read_branches),
}
_MAP = {
    **_COMMON,
    **_IO,
    **_FLOW,
    **_RESULT,
    "ItemProcessor": read_processor,
    "Iterator": read_processor,
    "ItemsPath": attr("items_path", read_reference_path),
    "Items": attr("items", read_items),
    "ItemSelector": read_item_selector,
    "Parameters": read_item_selector,
    "MaxConcurrency": attr("max_concurrency", int_reader(0)),
    "MaxConcurrencyPath": attr("max_concurrency_path", read_reference_path),
    "ToleratedFailurePercentage": attr("tolerated_failure_percentage", read_percentage),
    "ToleratedFailurePercentagePath": attr(
        "tolerated_failure_percentage_path", read_reference_path
    ),
    "ToleratedFailureCount": attr("tolerated_failure_count", int_reader(0)),
    "ToleratedFailureCountPath": attr("tolerated_failure_count_path", read_reference_path),
    "ItemReader": read_item_reader,
    "ItemBatcher": read_item_batcher,
    "ResultWriter": read_result_writer,
    "Label": attr("label", read_label),
}


# --- cross-field rules ------------------------------------------------------------------


def _exclusive(s: StateInput, *keys: str, required: bool = False) -> None:
    present = [key for key in keys if key in s.raw]
    names = ", ".join(f"'{key}'" for key in keys)
    if len(present) > 1:
        s.ctx.error(s.loc, f"A {s.type} state may set only one of {names}")
    elif required and not present:
        s.ctx.error(s.loc, f"A {s.type} state requires exactly one of {names}")


def _require(s: StateInput, key: str) -> bool:
    if key in s.raw:
        return True
    s.ctx.error(s.loc, f"A {s.type} state requires the field '{key}'")
    return False


def _transition(s: StateInput, attrs: dict[str, Any]) -> None:
    if "End" in s.raw and not isinstance(s.raw["End"], bool):
        return  # already reported
    has_next = "Next" in s.raw
    ends = attrs.get("end") is True
    if has_next and ends:
        s.ctx.error(s.loc, f"A {s.type} state cannot have both 'Next' and 'End: true'")
    elif not has_next and not ends:
        s.ctx.error(s.loc, f"A {s.type} state must have either 'Next' or 'End: true'")


def _check_pass(s: StateInput, attrs: dict[str, Any]) -> None:
    _transition(s, attrs)


def _check_task(s: StateInput, attrs: dict[str, Any]) -> None:
    _transition(s, attrs)
    if not _require(s, "Resource"):
        attrs["resource"] = ""
    _exclusive(s, "TimeoutSeconds", "TimeoutSecondsPath")
    _exclusive(s, "HeartbeatSeconds", "HeartbeatSecondsPath")
    timeout, heartbeat = attrs.get("timeout_seconds"), attrs.get("heartbeat_seconds")
    if isinstance(timeout, int) and isinstance(heartbeat, int) and heartbeat >= timeout:
        s.ctx.error(
            s.at("HeartbeatSeconds"),
            f"'HeartbeatSeconds' ({heartbeat}) must be smaller than 'TimeoutSeconds' ({timeout})",
        )


def _check_choice(s: StateInput, attrs: dict[str, Any]) -> None:
    _require(s, "Choices")


def _check_wait(s: StateInput, attrs: dict[str, Any]) -> None:
    _transition(s, attrs)
    _exclusive(s, "Seconds", "SecondsPath", "Timestamp", "TimestampPath", required=True)


def _check_nothing(s: StateInput, attrs: dict[str, Any]) -> None:
    return None


def _check_fail(s: StateInput, attrs: dict[str, Any]) -> None:
    _exclusive(s, "Error", "ErrorPath")
    _exclusive(s, "Cause", "CausePath")


def _check_parallel(s: StateInput, attrs: dict[str, Any]) -> None:
    _transition(s, attrs)
    _require(s, "Branches")


def _check_map(s: StateInput, attrs: dict[str, Any]) -> None:
    _transition(s, attrs)
    _exclusive(s, "ItemProcessor", "Iterator", required=True)
    if "item_processor" not in attrs:
        attrs["item_processor"] = Machine(f"{s.machine_id}/{s.name}", "", {})
    _exclusive(s, "ItemSelector", "Parameters")
    _exclusive(s, "MaxConcurrency", "MaxConcurrencyPath")
    _exclusive(s, "ToleratedFailurePercentage", "ToleratedFailurePercentagePath")
    _exclusive(s, "ToleratedFailureCount", "ToleratedFailureCountPath")


@dataclass(frozen=True, slots=True)
class _Kind:
    cls: type[State]
    fields: Mapping[str, Reader]
    check: Callable[[StateInput, dict[str, Any]], None]


STATE_TYPES: Mapping[str, _Kind] = {
    "Pass": _Kind(PassState, _PASS, _check_pass),
    "Task": _Kind(TaskState, _TASK, _check_task),
    "Choice": _Kind(ChoiceState, _CHOICE, _check_choice),
    "Wait": _Kind(WaitState, _WAIT, _check_wait),
    "Succeed": _Kind(SucceedState, _SUCCEED, _check_nothing),
    "Fail": _Kind(FailState, _FAIL, _check_fail),
    "Parallel": _Kind(ParallelState, _PARALLEL, _check_parallel),
    "Map": _Kind(MapState, _MAP, _check_map),
}
"""Every state type: its node class, the fields it accepts and its cross-field rules."""


# --- building a state -------------------------------------------------------------------


def parse_state(ctx: Context, name: str, raw: Any, loc: str, machine_id: str) -> State | None:
    """Build the node of state ``name`` (``None`` when it is too broken to build)."""
    state = ctx.obj(raw, loc, name)
    if state is None:
        return None
    if "Type" not in state:
        ctx.error(loc, "A state requires the field 'Type'")
        return None
    kind = STATE_TYPES.get(state["Type"]) if isinstance(state["Type"], str) else None
    if kind is None:
        types = ", ".join(STATE_TYPES)
        ctx.error(pointer(loc, "Type"), f"The value of 'Type' must be one of {types}")
        return None
    language = _language(ctx, state, loc)
    s = StateInput(ctx, state, loc, name, state["Type"], language, machine_id)
    attrs = _read_fields(s, kind.fields)
    kind.check(s, attrs)
    return kind.cls(name=name, type=s.type, query_language=language, **attrs)


def _language(ctx: Context, state: Mapping[str, Any], loc: str) -> QueryLanguage:
    if "QueryLanguage" not in state:
        return ctx.language
    value = ctx.one_of(
        state["QueryLanguage"], pointer(loc, "QueryLanguage"), "QueryLanguage", QUERY_LANGUAGES
    )
    if value == "JSONPath" and ctx.language == "JSONata":
        ctx.error(
            loc, "'QueryLanguage' can not be 'JSONPath' if set to 'JSONata' for whole state machine"
        )
        return "JSONata"
    return "JSONata" if value == "JSONata" else ctx.language


def _read_fields(s: StateInput, fields: Mapping[str, Reader]) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    other = JSONATA_ONLY if s.language == "JSONPath" else JSONPATH_ONLY
    for key in s.raw:
        if key in ("Type", "QueryLanguage"):
            continue
        reader = fields.get(key)
        if reader is None:
            s.ctx.unsupported(s.loc, key)
        elif key in other:
            s.ctx.wrong_language(s.loc, key, s.language)
        else:
            attrs.update(reader(s, key))
    return attrs
