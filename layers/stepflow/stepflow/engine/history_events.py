"""History events as decisions record them: GetExecutionHistory dicts, or compact tuples.

Most of a loop's history is ``...StateEntered`` and ``...StateExited`` events whose
details are the state's name and one JSON text. A decision asked for compact events
(``decide(..., compact=True)``) records those as a :data:`CompactEvent` tuple:
immutable, so a log that keeps its events in memory may store it as is, and cheaper to
make than the three dicts of the event. :func:`expand` gives the dict, equal to the
one the decision would have recorded otherwise; only a log that declares
``compact_events = True`` is handed compact events (see :func:`takes_compact_events`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

CompactEvent = tuple[int, int, float, str, str, str, str, str]
"""A state's entered or exited event: ``(id, previousEventId, timestamp, type, details key,
state name, field, JSON text)``; ``field`` is ``input`` or ``output``."""

HistoryEvent = dict[str, Any] | CompactEvent
"""What a decision records: an event dict (GetExecutionHistory shape) or a compact one."""


def expand(event: HistoryEvent) -> dict[str, Any]:
    """``event`` as a GetExecutionHistory dict (a dict is returned as is)."""
    if isinstance(event, dict):
        return event
    event_id, previous, timestamp, type_, key, name, field, text = event
    return {
        "id": event_id,
        "previousEventId": previous,
        "timestamp": timestamp,
        "type": type_,
        key: {"name": name, field: text, f"{field}Details": {"truncated": False}},
    }


def expanded(events: Iterable[HistoryEvent]) -> list[dict[str, Any]]:
    """Every event of ``events`` as a dict, in order."""
    return [event if isinstance(event, dict) else expand(event) for event in events]


def takes_compact_events(log: object) -> bool:
    """Whether ``log`` stores compact events itself (``compact_events = True`` on it).

    Looked up without ``__getattr__``: a wrapper that forwards unknown attributes to an
    inner log (to meter or count its writes) is not taken to accept them.
    """
    try:
        return object.__getattribute__(log, "compact_events") is True
    except AttributeError:
        return False


STATE_TYPES = ("Pass", "Choice", "Task", "Wait", "Succeed", "Fail", "Parallel", "Map")
ENTERED: dict[str, str] = {t: f"{t}StateEntered" for t in STATE_TYPES}
"""Each state type's entered event type, made once: every event shares the one string."""
EXITED: dict[str, str] = {t: f"{t}StateExited" for t in STATE_TYPES}
"""Each state type's exited event type, made once."""
