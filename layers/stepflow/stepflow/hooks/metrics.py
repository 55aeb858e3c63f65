"""The metrics hook: execution counts and real durations, measured from the events.

Per execution start and end it counts ``ExecutionsStarted``,
``ExecutionsSucceeded``, ``ExecutionsFailed``, ``ExecutionsTimedOut`` or
``ExecutionsAborted`` and, at the end, ``ExecutionTime`` (milliseconds, from the
start's timestamp to the end event's). Per state exit it records ``StateTime``
(milliseconds, from the state's ``...StateEntered`` to its ``...StateExited``).

Durations are never guessed: the start is the batch's ``ExecutionStarted`` (or
``ExecutionRedriven``) of that execution, else the log head's start date (the
injected :data:`~stepflow.hooks.support.FactsLookup`, only for an execution never
redriven: a redriven one's head keeps its first start). A state's entry is
remembered across batches in bounded memory. When a start or an entry is not
known, no duration is emitted (the count still is), and a duration below zero
(clock skew between writers) is dropped, never clamped.

Dimensions (bounded): ``ExecutionType`` (STANDARD or EXPRESS, from the log),
``StateMachine`` (the state machine's name, without version or alias: as many
values as state machines, at most the account's state machines; off with
``per_state_machine=False``) and, for ``StateTime``, ``StateType`` (Task, Pass, ...).
Never execution data, names of executions or state names. Metrics go to an
injected :class:`EmfSink` (the edge's writes CloudWatch EMF with Powertools).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from stepflow.hooks.events import HookEvent, HookKind
from stepflow.hooks.support import FactsLookup, RecentKeys, epoch_seconds

Unit = Literal["Count", "Milliseconds"]

END_METRICS: dict[HookKind, str] = {
    "ExecutionSucceeded": "ExecutionsSucceeded",
    "ExecutionFailed": "ExecutionsFailed",
    "ExecutionTimedOut": "ExecutionsTimedOut",
    "ExecutionAborted": "ExecutionsAborted",
}
"""The count metric of each execution end."""

_STARTS = ("ExecutionStarted", "ExecutionRedriven")


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric value with its dimensions (name, value pairs in order) and the epoch
    seconds of the event it measures (None: not known; the sink uses its own time)."""

    name: str
    unit: Unit
    value: float
    dimensions: tuple[tuple[str, str], ...]
    timestamp: float | None = None


class EmfSink(Protocol):
    """Where metrics go (CloudWatch EMF at the edge, a list in tests)."""

    def emit(self, metric: Metric) -> None:
        """Record ``metric``."""
        ...


@dataclass(slots=True)
class MemorySink:
    """An :class:`EmfSink` that keeps what it is given."""

    metrics: list[Metric] = field(default_factory=list)

    def emit(self, metric: Metric) -> None:
        """Keep ``metric``."""
        self.metrics.append(metric)

    def named(self, name: str) -> list[Metric]:
        """The metrics called ``name``, in order."""
        return [m for m in self.metrics if m.name == name]


def state_machine_name(state_machine_arn: str) -> str:
    """The name in a state machine ARN (a version's or alias's suffix dropped)."""
    parts = state_machine_arn.split(":")
    if len(parts) >= 7 and parts[5] == "stateMachine":
        return parts[6]
    return parts[-1] if parts else ""


class MetricsHook:
    """:class:`~stepflow.hooks.Hook` emitting execution and state metrics (module doc)."""

    name = "metrics"
    kinds: frozenset[HookKind] | None = frozenset(
        {"ExecutionStarted", "ExecutionRedriven", "StateEntered", "StateExited", *END_METRICS}
    )

    def __init__(
        self,
        sink: EmfSink,
        *,
        facts: FactsLookup | None = None,
        per_state_machine: bool = True,
        open_states: int = 10_000,
    ) -> None:
        self.sink = sink
        self.facts = facts
        self.per_state_machine = per_state_machine
        self._open_states = open_states
        self._entered: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
        self._recent = RecentKeys()

    def handle(self, events: Sequence[HookEvent]) -> None:
        """Emit the metrics of ``events`` (repeats dropped)."""
        starts: dict[str, float] = {}
        for event in self._recent.fresh(events):
            when = epoch_seconds(event.timestamp)
            kind = event.kind
            if kind in _STARTS:
                if when is not None:
                    starts[event.execution.execution_arn] = when
                if kind == "ExecutionStarted":
                    self._count(event, "ExecutionsStarted")
            elif kind in END_METRICS:
                self._count(event, END_METRICS[kind])
                start = self._start(event, starts)
                if start is not None and when is not None and when >= start:
                    self._emit(event, "ExecutionTime", "Milliseconds", (when - start) * 1000)
            elif kind == "StateEntered" and when is not None and event.state_name:
                self._enter(event, when)
            elif kind == "StateExited" and when is not None and event.state_name:
                entered = self._exit(event)
                if entered is not None and when >= entered:
                    state_type = str(event.event.get("type", "")).removesuffix("StateExited")
                    self._emit(
                        event,
                        "StateTime",
                        "Milliseconds",
                        (when - entered) * 1000,
                        (("StateType", state_type or "Unknown"),),
                    )

    def _start(self, event: HookEvent, starts: dict[str, float]) -> float | None:
        arn = event.execution.execution_arn
        if arn in starts:
            return starts[arn]
        if self.facts is None or event.execution.redrive_count:
            return None  # a redriven execution's head keeps its first start: not this run's
        facts = self.facts(arn)
        return None if facts is None else facts.start_date

    def _enter(self, event: HookEvent, when: float) -> None:
        key = (event.execution.execution_arn, event.state_name or "")
        self._entered.setdefault(key, []).append(when)
        self._entered.move_to_end(key)
        while len(self._entered) > self._open_states:
            self._entered.popitem(last=False)

    def _exit(self, event: HookEvent) -> float | None:
        key = (event.execution.execution_arn, event.state_name or "")
        stack = self._entered.get(key)
        if not stack:
            return None
        entered = stack.pop()
        if not stack:
            del self._entered[key]
        return entered

    def _count(self, event: HookEvent, name: str) -> None:
        self._emit(event, name, "Count", 1.0)

    def _emit(
        self,
        event: HookEvent,
        name: str,
        unit: Unit,
        value: float,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> None:
        dimensions: tuple[tuple[str, str], ...] = (
            ("ExecutionType", event.execution.execution_type),
        )
        if self.per_state_machine:
            machine = state_machine_name(event.execution.state_machine_arn)
            dimensions += (("StateMachine", machine or "Unknown"),)
        when = epoch_seconds(event.timestamp)
        self.sink.emit(Metric(name, unit, value, dimensions + extra, when))
