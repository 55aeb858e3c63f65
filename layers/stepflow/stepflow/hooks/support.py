"""What the built-in hooks share: event timestamps, repeat filtering, execution facts.

Pure: no I/O (:class:`CachedFacts` is given its reader and clock).
:class:`RecentKeys` drops a hook event seen before (the stream delivers at least
once): always within a batch, and across batches as far as its bounded memory
reaches (best effort: a new Lambda container, or a key older than ``capacity``
keys, is not remembered).
"""

from __future__ import annotations

import time
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
    """What the log's head says of an execution.

    Its start (epoch seconds), input (JSON) and redrives (how many, the last
    one's date in epoch seconds).
    """

    start_date: float | None
    input: str | None = None
    redrive_count: int = 0
    redrive_date: float | None = None


FactsLookup = Callable[[str], ExecutionFacts | None]
"""Reads an execution's facts from the log (None: unknown), for events whose batch
does not hold the execution's ``ExecutionStarted``."""


class CachedFacts:
    """A :data:`FactsLookup` reading each execution's head once while its answer is fresh.

    The hooks of one dispatcher share one (the metrics and EventBridge hooks read
    an execution's head once per batch, not once each per record). An answer is
    kept ``ttl`` seconds (default 60: longer than a batch takes, shorter than the
    stream's redelivery back-off), for at most ``capacity`` executions and
    ``max_input_bytes`` of input text in all (the oldest answers go first). A
    head read again after a redrive is read anew once its answer is stale; until
    then a redriven run's ``redriveDate`` is left null, never taken from another run.
    """

    def __init__(
        self,
        read: FactsLookup,
        *,
        ttl: float = 60.0,
        capacity: int = 1_000,
        max_input_bytes: int = 8 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.read = read
        self.ttl = ttl
        self.capacity = capacity
        self.max_input_bytes = max_input_bytes
        self._clock = clock
        self._answers: OrderedDict[str, tuple[float, ExecutionFacts | None]] = OrderedDict()
        self._input_bytes = 0

    def __call__(self, execution_arn: str) -> ExecutionFacts | None:
        """The execution's facts: remembered while fresh, else read (and remembered)."""
        now = self._clock()
        found = self._answers.get(execution_arn)
        if found is not None and now - found[0] < self.ttl:
            return found[1]
        facts = self.read(execution_arn)
        self._drop(execution_arn)
        self._answers[execution_arn] = (now, facts)
        self._input_bytes += _input_size(facts)
        while self._answers and (
            len(self._answers) > self.capacity or self._input_bytes > self.max_input_bytes
        ):
            self._drop(next(iter(self._answers)))
        return facts

    def clear(self) -> None:
        """Forget every answer (e.g. at the start of an invocation)."""
        self._answers.clear()
        self._input_bytes = 0

    def _drop(self, execution_arn: str) -> None:
        found = self._answers.pop(execution_arn, None)
        if found is not None:
            self._input_bytes -= _input_size(found[1])


def _input_size(facts: ExecutionFacts | None) -> int:
    return 0 if facts is None or facts.input is None else len(facts.input)
