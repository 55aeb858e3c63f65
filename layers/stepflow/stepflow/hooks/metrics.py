"""The metrics hook: execution counts and real durations, measured from the events.

Per execution start and end it counts ``ExecutionsStarted``,
``ExecutionsSucceeded``, ``ExecutionsFailed``, ``ExecutionsTimedOut`` or
``ExecutionsAborted`` and, at the end, ``ExecutionTime`` (milliseconds, from the
start's timestamp to the end event's). Per state exit it records ``StateTime``
(milliseconds, from the state's ``...StateEntered`` to its ``...StateExited``).

Same-named states open at once (Map iterations, Parallel branches running one
state machine) are paired by thread: each event's ``previousEventId`` names the
last event of its own thread, so an exit is matched to the entry its chain of
state and task events leads back to. When the chain is broken (an event that is
no hook event, e.g. a Map state's own ``MapIteration...`` events or ``.sync``'s
``TaskSubmitted``, or one older than the bounded memory), the exit is paired with
the latest open entry of that name: then concurrent durations may be swapped
(their sum, and so their mean, is still right).

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
_TASKS: frozenset[HookKind] = frozenset(
    {"TaskScheduled", "TaskStarted", "TaskSucceeded", "TaskFailed", "TaskTimedOut"}
)


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric value, its dimensions and its event's time.

    ``dimensions`` are (name, value) pairs in order; ``timestamp`` the epoch seconds
    of the event it measures (None: not known; the sink uses its own time).
    """

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
        {"ExecutionStarted", "ExecutionRedriven", "StateEntered", "StateExited", *END_METRICS,
         *_TASKS}  # task events: to follow a state's thread to its exit
    )  # fmt: skip

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
        self._entered: OrderedDict[tuple[str, int], tuple[str, float]] = OrderedDict()
        """Open state entries: (execution, entry event id) -> (state name, entry time)."""
        self._by_name: dict[tuple[str, str], list[int]] = {}
        self._owner: OrderedDict[tuple[str, int], int] = OrderedDict()
        """(execution, event id) -> the id of the state entry its thread is in."""
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
            elif kind in _TASKS:
                self._follow(event)
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
        arn, name = event.execution.execution_arn, event.state_name or ""
        self._entered[(arn, event.id)] = (name, when)
        self._by_name.setdefault((arn, name), []).append(event.id)
        self._follow(event, event.id)
        while len(self._entered) > self._open_states:
            (old_arn, old_id), (old_name, _) = self._entered.popitem(last=False)
            self._unlist(old_arn, old_name, old_id)

    def _follow(self, event: HookEvent, owner: int | None = None) -> None:
        """Remember the state entry ``event`` belongs to (its thread's: ``previousEventId``)."""
        arn = event.execution.execution_arn
        if owner is None:
            owner = self._owner_of(event)
        if owner is None:
            return
        self._owner[(arn, event.id)] = owner
        while len(self._owner) > 4 * self._open_states:
            self._owner.popitem(last=False)

    def _owner_of(self, event: HookEvent) -> int | None:
        previous = event.event.get("previousEventId")
        if not isinstance(previous, int) or isinstance(previous, bool):
            return None
        return self._owner.get((event.execution.execution_arn, previous))

    def _exit(self, event: HookEvent) -> float | None:
        """The entry time of the state ``event`` exits (module doc).

        Its own thread's entry when the events chain to it, else the latest open
        entry of the same name.
        """
        arn, name = event.execution.execution_arn, event.state_name or ""
        owner = self._owner_of(event)
        found = self._entered.get((arn, owner)) if owner is not None else None
        if found is None or found[0] != name:
            stack = self._by_name.get((arn, name))
            if not stack:
                return None
            owner = stack[-1]
            found = self._entered[(arn, owner)]
        assert owner is not None
        del self._entered[(arn, owner)]
        self._unlist(arn, name, owner)
        return found[1]

    def _unlist(self, arn: str, name: str, entry_id: int) -> None:
        stack = self._by_name.get((arn, name), [])
        if entry_id in stack:
            stack.remove(entry_id)
        if not stack:
            self._by_name.pop((arn, name), None)

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
