"""Parsing the ``Retry`` and ``Catch`` lists of Task, Parallel and Map states."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stepflow.asl.catch import Catcher
from stepflow.asl.parse_context import Context, pointer
from stepflow.asl.retry import Retrier
from stepflow.asl.states.base import MISSING, ROOT_PATH, QueryLanguage
from stepflow.data.jsonpath import Path

_ALL = "States.ALL"
_MAX_DELAY = 31_622_401

_RETRIER_FIELDS = frozenset(
    {
        "ErrorEquals",
        "IntervalSeconds",
        "MaxAttempts",
        "BackoffRate",
        "MaxDelaySeconds",
        "JitterStrategy",
        "Comment",
    }
)
_CATCHER_FIELDS = {
    "JSONPath": frozenset({"ErrorEquals", "Next", "ResultPath", "Assign", "Comment"}),
    "JSONata": frozenset({"ErrorEquals", "Next", "Output", "Assign", "Comment"}),
}
_CATCHER_ANY = _CATCHER_FIELDS["JSONPath"] | _CATCHER_FIELDS["JSONata"]


def parse_retry(ctx: Context, value: Any, loc: str) -> tuple[Retrier, ...]:
    """The retriers of a ``Retry`` list at ``loc``."""
    entries = _entries(ctx, value, loc, "Retry")
    retriers = []
    for i, entry in enumerate(entries):
        retrier = _retrier(ctx, entry, pointer(loc, i), last=i == len(entries) - 1)
        if retrier is not None:
            retriers.append(retrier)
    return tuple(retriers)


def parse_catch(ctx: Context, value: Any, loc: str, language: QueryLanguage) -> tuple[Catcher, ...]:
    """The catchers of a ``Catch`` list at ``loc``."""
    entries = _entries(ctx, value, loc, "Catch")
    catchers = []
    for i, entry in enumerate(entries):
        catcher = _catcher(ctx, entry, pointer(loc, i), language, last=i == len(entries) - 1)
        if catcher is not None:
            catchers.append(catcher)
    return tuple(catchers)


def _entries(ctx: Context, value: Any, loc: str, name: str) -> list[Any]:
    if isinstance(value, list):
        return value
    ctx.error(loc, f"The value of '{name}' must be an array")
    return []


def _retrier(ctx: Context, raw: Any, loc: str, *, last: bool) -> Retrier | None:
    entry = ctx.obj(raw, loc, "Retry")
    if entry is None:
        return None
    _unknown(ctx, entry, loc, _RETRIER_FIELDS)
    errors = _error_equals(ctx, entry, loc, last=last, kind="retrier")
    fields: dict[str, Any] = {}
    if "IntervalSeconds" in entry:
        fields["interval_seconds"] = ctx.integer(
            entry["IntervalSeconds"], pointer(loc, "IntervalSeconds"), "IntervalSeconds", 1
        )
    if "MaxAttempts" in entry:
        fields["max_attempts"] = ctx.integer(
            entry["MaxAttempts"], pointer(loc, "MaxAttempts"), "MaxAttempts", 0
        )
    if "BackoffRate" in entry:
        fields["backoff_rate"] = ctx.number(
            entry["BackoffRate"], pointer(loc, "BackoffRate"), "BackoffRate", 1.0
        )
    if "MaxDelaySeconds" in entry:
        fields["max_delay_seconds"] = ctx.integer(
            entry["MaxDelaySeconds"],
            pointer(loc, "MaxDelaySeconds"),
            "MaxDelaySeconds",
            1,
            _MAX_DELAY,
        )
    if "JitterStrategy" in entry:
        fields["jitter_strategy"] = ctx.one_of(
            entry["JitterStrategy"],
            pointer(loc, "JitterStrategy"),
            "JitterStrategy",
            ("FULL", "NONE"),
        )
    if "Comment" in entry:
        ctx.string(entry["Comment"], pointer(loc, "Comment"), "Comment")
    valid = {key: value for key, value in fields.items() if value is not None}
    if "backoff_rate" in valid:
        valid["backoff_rate"] = float(valid["backoff_rate"])
    return Retrier(errors, **valid)


def _catcher(
    ctx: Context, raw: Any, loc: str, language: QueryLanguage, *, last: bool
) -> Catcher | None:
    entry = ctx.obj(raw, loc, "Catch")
    if entry is None:
        return None
    allowed = _CATCHER_FIELDS[language]
    for key in entry:
        if key in _CATCHER_ANY and key not in allowed:
            ctx.wrong_language(loc, key, language)
    _unknown(ctx, entry, loc, _CATCHER_ANY)
    errors = _error_equals(ctx, entry, loc, last=last, kind="catcher")
    next_state = ""
    if "Next" not in entry:
        ctx.error(loc, "A catcher requires the field 'Next'")
    else:
        next_state = ctx.string(entry["Next"], pointer(loc, "Next"), "Next") or ""
    result_path: Path | None = ROOT_PATH
    if "ResultPath" in entry and language == "JSONPath":
        result_path = ctx.path(
            entry["ResultPath"],
            pointer(loc, "ResultPath"),
            "ResultPath",
            nullable=True,
            writable=True,
        )
    assign = None
    if "Assign" in entry:
        assign = ctx.assign(entry["Assign"], pointer(loc, "Assign"), language)
    output = MISSING
    if "Output" in entry and language == "JSONata":
        output = entry["Output"]
        ctx.jsonata(output, pointer(loc, "Output"), "Output")
    return Catcher(errors, next_state, result_path, assign, output)


def _error_equals(
    ctx: Context, entry: Mapping[str, Any], loc: str, *, last: bool, kind: str
) -> tuple[str, ...]:
    if "ErrorEquals" not in entry:
        ctx.error(loc, f"A {kind} requires the field 'ErrorEquals'")
        return ()
    where = pointer(loc, "ErrorEquals")
    value = entry["ErrorEquals"]
    if not isinstance(value, list) or not value:
        ctx.error(where, "The value of 'ErrorEquals' must be a non-empty array of error names")
        return ()
    names = []
    for i, name in enumerate(value):
        checked = ctx.string(name, pointer(where, i), "ErrorEquals", allow_empty=False)
        if checked is not None:
            names.append(checked)
    if _ALL in names and len(value) > 1:
        ctx.error(where, f"'{_ALL}' must appear alone in 'ErrorEquals'")
    if _ALL in names and not last:
        ctx.error(where, f"A {kind} with '{_ALL}' must be the last one")
    return tuple(names)


def _unknown(ctx: Context, entry: Mapping[str, Any], loc: str, allowed: frozenset[str]) -> None:
    for key in entry:
        if key not in allowed:
            ctx.unsupported(loc, key)
