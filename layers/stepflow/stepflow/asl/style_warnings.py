"""AWS's warnings: a definition that is valid but probably not what its author meant.

``ValidateStateMachineDefinition`` documents three warning codes, all about
JSONPath states:

- ``NO_DOLLAR``: a payload template field (``Parameters``, ``ResultSelector``,
  ``ItemSelector``, ``Assign``, a Map's ``ItemReader.Parameters`` and
  ``ResultWriter.Parameters``) whose value looks like a path or an intrinsic
  function but whose name does not end with ``.$``, so it is passed as text;
- ``NO_PATH``: a field whose value looks like a path but that has a ``…Path``
  twin meant for paths (a Choice rule's ``StringEquals`` for
  ``StringEqualsPath``, a Fail state's ``Error`` for ``ErrorPath``);
- ``PASS_RESULT_IS_STATIC``: a ``.$`` field in a Pass state's ``Result``, which
  is never evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from stepflow.asl.diagnostics import Diagnostic
from stepflow.asl.parse_choice import OPERATORS
from stepflow.asl.parse_context import pointer
from stepflow.asl.walk import StateVisit, iter_states
from stepflow.data.jsonpath import is_path

NO_DOLLAR = "NO_DOLLAR"
NO_PATH = "NO_PATH"
PASS_RESULT_IS_STATIC = "PASS_RESULT_IS_STATIC"

_TEMPLATES = ("Parameters", "ResultSelector", "ItemSelector", "Assign")
_NESTED_TEMPLATES = ("ItemReader", "ResultWriter")
"""A distributed Map's blocks whose ``Parameters`` are payload templates too."""
_INTRINSIC = re.compile(r"States\.[A-Za-z0-9]+\(.*\)", re.DOTALL)
_PATH_START = re.compile(r"\$\$?(?:$|[.\[])")
_WITH_PATH = (*(op for op in OPERATORS if f"{op}Path" in OPERATORS), "Error", "Cause")
"""The fields with a ``…Path`` twin: Choice comparisons, and a Fail state's Error and Cause."""


def looks_dynamic(value: object) -> bool:
    """Whether ``value`` reads as a path (``$.x``, ``$$.Execution.Id``) or an intrinsic call."""
    if not isinstance(value, str):
        return False
    if _INTRINSIC.fullmatch(value):
        return True
    return _PATH_START.match(value) is not None and is_path(value)


def style_warnings(raw: Mapping[str, Any]) -> list[Diagnostic]:
    """The warnings of a definition (as JSON values) that parsed; never raises."""
    top = raw.get("QueryLanguage", "JSONPath")
    try:
        return [
            diagnostic
            for visit in iter_states(raw)
            if _language(visit, top) == "JSONPath"
            for diagnostic in _state(visit.state, visit.location)
        ]
    except RecursionError:  # the parser reports the nesting
        return []


def _language(visit: StateVisit, top: object) -> object:
    """The state's query language: its own, else the nearest enclosing state's, else ``top``."""
    language = top
    for state, _ in visit.scopes:
        language = state.get("QueryLanguage", language)
    return visit.state.get("QueryLanguage", language)


def _state(state: Mapping[str, Any], here: str) -> Iterator[Diagnostic]:
    for key in _TEMPLATES:
        if key in state:
            yield from _no_dollar(state[key], pointer(here, key), key)
    for block in _NESTED_TEMPLATES:
        inner = state.get(block)
        if isinstance(inner, Mapping) and "Parameters" in inner:
            field = f"{block}.Parameters"
            yield from _no_dollar(inner["Parameters"], pointer(here, block, "Parameters"), field)
    if state.get("Type") == "Pass" and "Result" in state:
        yield from _static_result(state["Result"], pointer(here, "Result"))
    if state.get("Type") == "Fail":
        yield from _no_path(state, here, intrinsics=True)
    choices = state.get("Choices")
    if state.get("Type") == "Choice" and isinstance(choices, list):
        for index, rule in enumerate(choices):
            yield from _rule(rule, pointer(here, "Choices", index))


def _no_dollar(template: Any, loc: str, field: str) -> Iterator[Diagnostic]:
    stack: list[tuple[Any, str]] = [(template, loc)]
    while stack:
        value, at = stack.pop()
        if isinstance(value, list):
            stack.extend((v, pointer(at, i)) for i, v in reversed(list(enumerate(value))))
            continue
        if not isinstance(value, Mapping):
            continue
        nested = []
        for key, item in value.items():
            if key.endswith(".$"):
                continue
            if looks_dynamic(item):
                yield Diagnostic(
                    pointer(at, key),
                    f"The value of '{key}' in '{field}' looks like a JSONPath or an intrinsic "
                    f"function ({item!r}) but the field name does not end with '.$': it is "
                    f"passed as plain text (name it '{key}.$' to evaluate it)",
                    NO_DOLLAR,
                    "WARNING",
                )
            else:
                nested.append((item, pointer(at, key)))
        stack.extend(reversed(nested))


def _static_result(result: Any, loc: str) -> Iterator[Diagnostic]:
    stack: list[tuple[Any, str]] = [(result, loc)]
    while stack:
        value, at = stack.pop()
        if isinstance(value, list):
            stack.extend((v, pointer(at, i)) for i, v in reversed(list(enumerate(value))))
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if key.endswith(".$"):
                    yield Diagnostic(
                        pointer(at, key),
                        f"A Pass state's 'Result' is static: '{key}' is not evaluated "
                        "(use 'Parameters' to build the output from the input)",
                        PASS_RESULT_IS_STATIC,
                        "WARNING",
                    )
                else:
                    stack.append((item, pointer(at, key)))


def _no_path(
    fields: Mapping[str, Any], loc: str, *, intrinsics: bool = False
) -> Iterator[Diagnostic]:
    """``ErrorPath``/``CausePath`` take intrinsic calls too; a Choice's ``…Path`` only paths."""
    for key in _WITH_PATH:
        value = fields.get(key)
        if looks_dynamic(value) and (intrinsics or not str(value).startswith("States.")):
            yield Diagnostic(
                pointer(loc, key),
                f"The value of '{key}' looks like a path ({value!r}) but the field is not "
                f"'{key}Path': it is used as plain text",
                NO_PATH,
                "WARNING",
            )


def _rule(rule: Any, loc: str) -> Iterator[Diagnostic]:
    if not isinstance(rule, Mapping):
        return
    yield from _no_path(rule, loc)
    for key in ("And", "Or"):
        nested = rule.get(key)
        if isinstance(nested, list):
            for index, child in enumerate(nested):
                yield from _rule(child, pointer(loc, key, index))
    if "Not" in rule:
        yield from _rule(rule["Not"], pointer(loc, "Not"))
