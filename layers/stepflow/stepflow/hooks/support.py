"""What the built-in hooks share: event timestamps, repeat filtering, execution facts.

Pure: no clock, no I/O. :class:`RecentKeys` drops a hook event seen before
(the stream delivers at least once): always within a batch, and across batches
as far as its bounded memory reaches (best effort: a new Lambda container, or a
key older than ``capacity`` keys, is not remembered).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stepflow.hooks.events import HookEvent


def epoch_seconds(value: Any) -> float | None:
    """``value`` (epoch seconds, ISO-8601 text or a datetime) as epoch seconds; None if not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def details_of(event: dict[str, Any]) -> dict[str, Any]:
    """The ``...EventDetails`` member of a history event ({} if it has none)."""
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            return value
    return {}


class RecentKeys:
    """The last ``capacity`` dedup keys seen (an LRU set)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._keys: OrderedDict[str, None] = OrderedDict()

    def fresh(self, events: Iterable[HookEvent]) -> Iterator[HookEvent]:
        """The events whose key was not seen before (each remembered once yielded)."""
        for event in events:
            key = event.dedup_key
            if key in self._keys:
                self._keys.move_to_end(key)
                continue
            self._keys[key] = None
            if len(self._keys) > self.capacity:
                self._keys.popitem(last=False)
            yield event

    def forget(self, events: Iterable[HookEvent]) -> None:
        """Forget ``events`` (their delivery failed: a redelivery must not be dropped)."""
        for event in events:
            self._keys.pop(event.dedup_key, None)


@dataclass(frozen=True, slots=True)
class ExecutionFacts:
    """What the log's head says of an execution: its start (epoch seconds), input (JSON)
    and redrives (how many, the last one's date in epoch seconds)."""

    start_date: float | None
    input: str | None = None
    redrive_count: int = 0
    redrive_date: float | None = None


FactsLookup = Callable[[str], ExecutionFacts | None]
"""Reads an execution's facts from the log (None: unknown), for events whose batch
does not hold the execution's ``ExecutionStarted``."""
