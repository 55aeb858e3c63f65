"""Parse and validate a definition into frozen nodes, reporting every problem at once.

:func:`validate` returns diagnostics shaped like AWS's
``ValidateStateMachineDefinition`` (a JSON-pointer ``location``, a ``code``
and a message); :func:`parse` builds a :class:`StateMachine` or raises
:class:`DefinitionError` carrying all of them. Neither raises anything else,
whatever the input.

This module handles the definition and its (nested) machines. The rules live
in :mod:`~stepflow.asl.parse_states` (which fields each state type accepts),
:mod:`~stepflow.asl.parse_fields` (how each field is read),
:mod:`~stepflow.asl.parse_choice`, :mod:`~stepflow.asl.parse_handlers`
(Retry/Catch), :mod:`~stepflow.asl.validate_graph` (transitions) and
:mod:`~stepflow.asl.parse_context` (diagnostics and value checks).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from stepflow.asl.diagnostics import DefinitionError, Diagnostic
from stepflow.asl.machine import Machine, StateMachine
from stepflow.asl.parse_context import Context, pointer
from stepflow.asl.parse_states import QUERY_LANGUAGES, parse_state
from stepflow.asl.states.base import QueryLanguage, State
from stepflow.asl.style_warnings import style_warnings
from stepflow.asl.validate_graph import check_graph

MAX_STATE_NAME = 80
"""The longest state name Step Functions accepts."""

_MACHINE_FIELDS = frozenset({"StartAt", "States", "Comment"})
_TOP_FIELDS = frozenset({"Version", "TimeoutSeconds", "QueryLanguage"})


def parse(definition: str | Mapping[str, Any]) -> StateMachine:
    """Parse a definition (JSON text or a dict); raise :class:`DefinitionError` if invalid.

    Warnings do not prevent parsing; any error does, and the exception carries
    every diagnostic found.
    """
    machine, diagnostics = _run(definition)
    if machine is None or any(d.severity == "ERROR" for d in diagnostics):
        raise DefinitionError(diagnostics)
    return machine


def validate(definition: str | Mapping[str, Any]) -> list[Diagnostic]:
    """Every problem in ``definition`` (an empty list when it is valid)."""
    return _run(definition)[1]


def _run(definition: object) -> tuple[StateMachine | None, list[Diagnostic]]:
    raw, problem = _load(definition)
    if problem is not None:
        return None, [problem]
    try:
        return _parse_top(raw)
    except RecursionError:
        message = "The definition is too deeply nested"
        return None, [Diagnostic("", message, "TOO_DEEPLY_NESTED")]


def _load(definition: object) -> tuple[Any, Diagnostic | None]:
    """The definition as plain JSON values, or the diagnostic saying why it is not JSON."""
    if isinstance(definition, str | bytes | bytearray):
        if not definition.strip():
            return None, Diagnostic("", "The definition is empty", "MISSING_DESCRIPTION")
        try:
            return json.loads(
                definition, parse_constant=_reject_constant, object_pairs_hook=_object
            ), None
        except (ValueError, RecursionError) as exc:
            return None, Diagnostic("", f"Invalid JSON: {exc}", "INVALID_JSON_DESCRIPTION")
    try:  # normalise a Python value to JSON: string keys, lists, finite numbers
        text = json.dumps(definition, allow_nan=False, default=_plain)
        return json.loads(text), None
    except (TypeError, ValueError, RecursionError) as exc:
        return None, Diagnostic(
            "", f"The definition is not JSON: {exc}", "INVALID_JSON_DESCRIPTION"
        )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class _DuplicateKeys(dict[str, Any]):
    """A JSON object whose text repeats keys (the last value wins, as in ``json``)."""

    duplicates: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    keys = [key for key, _ in pairs]
    marked = _DuplicateKeys(result)
    marked.duplicates = tuple(key for key in result if keys.count(key) > 1)
    return marked


def _plain(value: object) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"a {type(value).__name__} is not a JSON value")


def _parse_top(raw: Any) -> tuple[StateMachine | None, list[Diagnostic]]:
    ctx = Context("JSONPath", _parse_machine)
    if not isinstance(raw, Mapping):
        ctx.error("", "The definition must be a JSON object")
        return None, ctx.diagnostics
    ctx.language = _top_language(ctx, raw)
    timeout = None
    if "TimeoutSeconds" in raw:
        timeout = ctx.integer(raw["TimeoutSeconds"], "/TimeoutSeconds", "TimeoutSeconds", 1)
    version = None
    if "Version" in raw:
        version = ctx.string(raw["Version"], "/Version", "Version")
    root = _parse_machine(ctx, raw, "", "", _TOP_FIELDS)
    machines = dict(ctx.machines)
    result = StateMachine(root, machines, timeout, version, root.comment, ctx.language)
    return result, ctx.diagnostics + style_warnings(raw)


def _top_language(ctx: Context, raw: Mapping[str, Any]) -> QueryLanguage:
    if "QueryLanguage" not in raw:
        return "JSONPath"
    value = ctx.one_of(raw["QueryLanguage"], "/QueryLanguage", "QueryLanguage", QUERY_LANGUAGES)
    return "JSONata" if value == "JSONata" else "JSONPath"


def _parse_machine(
    ctx: Context, raw: Any, loc: str, machine_id: str, extra: frozenset[str]
) -> Machine:
    """Build (and register in ``ctx.machines``) the machine at ``loc``."""
    if not isinstance(raw, Mapping):
        ctx.error(loc, "A state machine must be an object with 'StartAt' and 'States'")
        return _register(ctx, Machine(machine_id, "", {}, query_language=ctx.language))
    body: Mapping[str, Any] = raw
    allowed = _MACHINE_FIELDS | extra
    for key in body:
        if key not in allowed:
            ctx.unsupported(loc, key)
    start_at = _required_string(ctx, body, loc, "StartAt")
    comment = None
    if "Comment" in body:
        comment = ctx.string(body["Comment"], pointer(loc, "Comment"), "Comment")
    states = _parse_states(ctx, body, loc, machine_id)
    if isinstance(body.get("States"), Mapping):
        check_graph(ctx, body["States"], start_at, loc)
    machine = Machine(machine_id, start_at or "", states, comment, ctx.language)
    return _register(ctx, machine)


def _register(ctx: Context, machine: Machine) -> Machine:
    ctx.machines[machine.id] = machine
    return machine


def _required_string(ctx: Context, body: Mapping[str, Any], loc: str, key: str) -> str | None:
    if key not in body:
        ctx.error(loc, f"A state machine requires the field '{key}'")
        return None
    return ctx.string(body[key], pointer(loc, key), key)


def _parse_states(
    ctx: Context, body: Mapping[str, Any], loc: str, machine_id: str
) -> dict[str, State]:
    if "States" not in body:
        ctx.error(loc, "A state machine requires the field 'States'")
        return {}
    where = pointer(loc, "States")
    raw_states = ctx.obj(body["States"], where, "States")
    if raw_states is None:
        return {}
    if not raw_states:
        ctx.error(where, "'States' must contain at least one state")
    for name in getattr(raw_states, "duplicates", ()):
        ctx.error(pointer(where, name), f"Duplicate State name: {name}", "DUPLICATE_STATE_NAME")
    states: dict[str, State] = {}
    for name, raw in raw_states.items():
        state_loc = pointer(where, name)
        _check_name(ctx, name, state_loc)
        node = parse_state(ctx, name, raw, state_loc, machine_id)
        if node is not None:
            states[name] = node
    return states


def _check_name(ctx: Context, name: str, loc: str) -> None:
    if not name:
        ctx.error(loc, "A state name must not be empty", "INVALID_STATE_NAME")
    elif len(name) > MAX_STATE_NAME:
        message = f"A state name must be at most {MAX_STATE_NAME} characters ({len(name)})"
        ctx.error(loc, message, "INVALID_STATE_NAME")
    first = ctx.state_names.setdefault(name, loc)
    if first != loc:
        ctx.report(
            loc,
            f"Duplicate State name: {name} (also at {first})",
            "DUPLICATE_STATE_NAME",
            "WARNING",
        )
