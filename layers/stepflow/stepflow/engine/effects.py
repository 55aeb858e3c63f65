"""A cell's effects in the execution history: StepFlow's own events, in AWS's style.

A ``stepflow:cell:*`` or ``stepflow:saga:compensate`` task reports the effects its
attempt requested with its result (``TaskSucceeded.effects`` / ``TaskFailed.effects``).
Just before that attempt's ``TaskSucceeded``/``TaskFailed`` event, the history gets one
event per effect, in the order the attempt requested them:

- ``StepFlowEffectSucceeded`` / ``StepFlowEffectFailed``: performed by this attempt;
- ``StepFlowEffectReplayed``: its result was recorded by an earlier run of the same
  attempt (a crash, a duplicate delivery) and returned without performing it again;
- ``StepFlowCompensationEffect{Succeeded,Failed,Replayed}``: the same for the effects of
  a saga's compensations (scope ``compensate:<entry>``);
- ``StepFlowEffectsOmitted``: how many more effects the attempt requested past
  :data:`MAX_EFFECT_EVENTS` (``omitted``).

Every one carries ``stepFlowEffectEventDetails`` (see :func:`effect_details`). The
``StepFlow`` prefix marks them as StepFlow's own: no AWS event has it.

The reports travel with the task's result in queue messages and lease records, so
:func:`effect_reports` bounds them where the runtime builds the event: an output is JSON
text of at most :data:`OUTPUT_BYTES` (cut, with ``outputDetails.truncated``), a cause at
most :data:`CAUSE_BYTES`, every name (effect, token, scope, error, cell, compensation) at
most :data:`NAME_CHARS` characters; once the outputs and causes of one attempt reach
:data:`ATTEMPT_BYTES` the following ones are left out (``truncated`` too). The WHOLE
reports of one attempt (every field, as JSON) are at most :data:`REPORTS_BYTES`: past
that, and past :data:`MAX_EFFECT_EVENTS` effects, one ``StepFlowEffectsOmitted`` event
counts the rest. In the history, effect events do not count towards the execution's
event cap; they are recorded only while the history is under it, the rest counted in
that one event (see :func:`emit_effects`).
Pure and deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from stepflow.data.serialize import dumps, utf8_size
from stepflow.engine.resources import describe

if TYPE_CHECKING:
    from stepflow.engine.model import Frame
    from stepflow.engine.step_context import StepContext

PREFIX = "StepFlow"
"""What marks StepFlow's own history event types."""

DETAILS_KEY = "stepFlowEffectEventDetails"
"""The details key of every effect event."""

OMITTED = "StepFlowEffectsOmitted"
"""The event that counts an attempt's effects past :data:`MAX_EFFECT_EVENTS`."""

OUTPUT_BYTES = 8_192
"""The longest effect output (UTF-8 bytes of its JSON text) an event shows."""

CAUSE_BYTES = 8_192
"""The longest effect failure cause (UTF-8 bytes) an event shows."""

ATTEMPT_BYTES = 65_536
"""The most output and cause bytes one attempt's effect events show in all; later ones are
left out (``truncated``)."""

MAX_EFFECT_EVENTS = 500
"""The most effect events one attempt records; one ``StepFlowEffectsOmitted`` counts the rest."""

REPORTS_BYTES = 131_072
"""The most UTF-8 bytes the JSON of one attempt's reports takes, every field counted (with the
``omitted`` count). With a result of ``max_payload_bytes`` (256 KiB) it stays under what one
DynamoDB item holds (400 KB): the lease record that keeps the result, and its message."""

NAME_CHARS = 256
"""Effect names, tokens, scopes, error names, cells and compensations are cut past this."""

_MOST_OMITTED = 10**12
_COUNT_BYTES = len(dumps({"omitted": _MOST_OMITTED})) + 1
"""What the ``omitted`` count may take (with its comma)."""


OUTCOMES = frozenset({"unknown", "performed"})
"""A failed effect's ``outcome`` when it may have happened anyway (any other is left out)."""


def effect_event_type(scope: str, ok: bool, replayed: bool) -> str:
    """The history event type of an effect (see the module docstring)."""
    kind = "CompensationEffect" if scope.startswith("compensate:") else "Effect"
    outcome = "Replayed" if replayed else ("Succeeded" if ok else "Failed")
    return f"{PREFIX}{kind}{outcome}"


def effect_reports(traces: Iterable[Any]) -> tuple[dict[str, Any], ...]:
    """The effects of one attempt (``EffectTrace`` dicts or earlier reports), bounded.

    Each report holds ``index``, ``effect``, ``token``, ``scope``, ``replayed``, ``ok``,
    and where set ``output`` (JSON text), ``truncated``, ``error``, ``cause``,
    ``compensation`` (the name of the effect that undoes it), ``outcome`` (``unknown`` or
    ``performed``: a failure that may have happened anyway) and ``cell``. Past
    :data:`MAX_EFFECT_EVENTS` effects, or once the JSON of the reports would pass
    :data:`REPORTS_BYTES` (outputs and causes are left out first), the rest are only
    counted: a last ``{"omitted": n}``. Entries that are not objects are dropped.
    Calling this again on its own result gives the same result.
    """
    reports: list[dict[str, Any]] = []
    budget = ATTEMPT_BYTES
    room = REPORTS_BYTES - 2 - _COUNT_BYTES  # the list's brackets, the count
    omitted = 0
    for trace in traces if isinstance(traces, list | tuple) else ():
        if not isinstance(trace, Mapping):
            continue
        if "omitted" in trace:  # an earlier pass's count
            count = trace["omitted"]
            omitted += count if type(count) is int and count > 0 else 0
            omitted = min(omitted, _MOST_OMITTED)
            continue
        if omitted or len(reports) >= MAX_EFFECT_EVENTS:
            omitted += 1  # the count is of the LAST effects: once one is, every later one is
            continue
        report = _report(trace)
        size = sum(len(report[k].encode()) for k in ("output", "cause") if k in report)
        if size > budget or (report.get("truncated") and "output" not in report):
            budget = -1  # left out (now or by an earlier pass): so is every later one
        budget -= size
        if budget < 0:
            _strip(report)
        whole = utf8_size(dumps(report)) + 1
        if whole > room and budget >= 0:  # the whole bound leaves out outputs from here on
            budget = -1
            _strip(report)
            whole = utf8_size(dumps(report)) + 1
        if whole > room:
            omitted += 1
            continue
        room -= whole
        reports.append(report)
    if omitted:
        reports.append({"omitted": omitted})
    return tuple(reports)


def _strip(report: dict[str, Any]) -> None:
    """Leave a report's output and cause out (``truncated``)."""
    report.pop("output", None)
    report.pop("cause", None)
    report["truncated"] = True


def _report(trace: Mapping[str, Any]) -> dict[str, Any]:
    index = trace.get("index")
    report: dict[str, Any] = {
        "index": index if type(index) is int and 0 <= index < 2**53 else -1,
        "effect": _name(trace.get("effect")),
        "token": _name(trace.get("token")),
        "scope": _name(trace.get("scope") or "run"),
        "replayed": trace.get("replayed") is True,
        "ok": trace.get("ok") is not False,
    }
    truncated = trace.get("truncated") is True
    if "output" in trace and isinstance(trace["output"], str):
        text: str | None = trace["output"]
    elif "result" in trace and report["ok"]:
        text = _encode(trace["result"])
    else:
        text = None
    if text is not None:
        cut = _cut(text, OUTPUT_BYTES)
        truncated = truncated or cut != text
        report["output"] = cut
    if truncated:
        report["truncated"] = True
    for key in ("error", "cell"):
        if isinstance(trace.get(key), str):
            report[key] = _name(trace[key])
    if isinstance(trace.get("cause"), str):
        report["cause"] = _cut(trace["cause"], CAUSE_BYTES)
    if trace.get("outcome") in OUTCOMES:
        report["outcome"] = trace["outcome"]
    undo = trace.get("compensation")
    if isinstance(undo, Mapping):
        undo = undo.get("effect")
    if isinstance(undo, str):
        report["compensation"] = _name(undo)
    return report


def effect_details(report: Mapping[str, Any], cell: str | None) -> dict[str, Any]:
    """The ``stepFlowEffectEventDetails`` of one (bounded) effect report.

    ``cell`` is the cell the task ran (from its resource; a report may name its own).
    """
    details: dict[str, Any] = {}
    named = report.get("cell") if isinstance(report.get("cell"), str) else cell
    if named:
        details["cell"] = named
    details.update(
        effect=report.get("effect", ""),
        index=report.get("index", -1),
        scope=report.get("scope", "run"),
        idempotencyKey=report.get("token", ""),
        replayed=report.get("replayed") is True,
    )
    if "output" in report or report.get("truncated"):
        details["output"] = report.get("output", "")
        details["outputDetails"] = {"truncated": report.get("truncated") is True}
    for key in ("error", "cause", "compensation"):
        if isinstance(report.get(key), str):
            details[key] = report[key]
    if report.get("outcome") in OUTCOMES:
        details["outcome"] = report["outcome"]
    return details


def emit_effects(d: StepContext, frame: Frame, resource: str, effects: Any) -> None:
    """Record one history event per reported effect of the attempt, in their order.

    Effect events do not count towards the execution's event cap, and are recorded only
    while the whole history is under it: those that do not fit are counted in the one
    ``StepFlowEffectsOmitted`` event (recorded even at the cap, one per attempt). So the
    effects an attempt performed never fail its execution: its result event, and every
    ordinary event after it, meet the cap as they would without them.
    """
    if not effects:
        return
    cell = task_cell(resource)
    reports = list(effect_reports(effects))
    omitted = reports.pop()["omitted"] if reports and "omitted" in reports[-1] else 0
    room = d.effect_room()
    if room is not None and len(reports) > room:
        omitted += len(reports) - room
        del reports[room:]
    for report in reports:
        kind = effect_event_type(str(report["scope"]), bool(report["ok"]), report["replayed"])
        d.emit_effect(frame, kind, DETAILS_KEY, effect_details(report, cell))
    if omitted:
        counted = {"omitted": omitted}
        d.emit_effect(frame, OMITTED, DETAILS_KEY, {"cell": cell, **counted} if cell else counted)


def task_cell(resource: str) -> str | None:
    """``name[:version]`` of a ``stepflow:cell:*`` resource (None for another one)."""
    info = describe(resource)
    if info.service != "stepflow" or not info.action.startswith("cell:"):
        return None
    return info.action[len("cell:") :] or None


def _encode(value: Any) -> str:
    try:
        return dumps(value)
    except (TypeError, ValueError, RecursionError):  # a record no handler could have made
        return '"(not JSON)"'


def _name(value: Any) -> str:
    if not isinstance(value, str | int):
        return ""
    return _cut(str(value)[:NAME_CHARS], NAME_CHARS * 4)


def _cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, on a character boundary.

    What cannot be UTF-8 (a lone surrogate) becomes ``?``: every log can store the result.
    """
    return text.encode("utf-8", "replace")[:limit].decode("utf-8", "ignore")
