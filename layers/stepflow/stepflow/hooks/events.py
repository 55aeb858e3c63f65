"""Hook events: what hooks are told, read from committed history events.

Hooks never run inside a commit: they are fed from the coordination log's
change stream (the DynamoDB table stream deployed, a stream poller in
``stepflow local``), after the events are durable. :func:`hook_events` turns a
run of one execution's committed history events (AWS's history event shape)
into :class:`HookEvent` values, one per event a hook may care about:

- execution started, succeeded, failed, timed out, aborted (and redriven);
- state entered and exited (``<Type>StateEntered`` / ``<Type>StateExited``);
- task scheduled, started and finished (``Task*``, ``LambdaFunction*`` and
  ``Activity*`` events: succeeded, failed, timed out).

Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

HookKind = Literal[
    "ExecutionStarted",
    "ExecutionSucceeded",
    "ExecutionFailed",
    "ExecutionTimedOut",
    "ExecutionAborted",
    "ExecutionRedriven",
    "StateEntered",
    "StateExited",
    "TaskScheduled",
    "TaskStarted",
    "TaskSucceeded",
    "TaskFailed",
    "TaskTimedOut",
]

EXECUTION_KINDS: frozenset[str] = frozenset(
    {
        "ExecutionStarted",
        "ExecutionSucceeded",
        "ExecutionFailed",
        "ExecutionTimedOut",
        "ExecutionAborted",
        "ExecutionRedriven",
    }
)
"""The history event types that are execution status changes (same names as hook kinds)."""

_TASK_SUFFIXES: tuple[tuple[str, HookKind], ...] = (
    ("Scheduled", "TaskScheduled"),
    ("Started", "TaskStarted"),
    ("Succeeded", "TaskSucceeded"),
    ("Failed", "TaskFailed"),
    ("TimedOut", "TaskTimedOut"),
)
_TASK_PREFIXES = ("Task", "LambdaFunction", "Activity")
_NOT_TASK = {"TaskStateEntered", "TaskStateExited", "TaskStateAborted", "TaskSubmitted"}


@dataclass(frozen=True, slots=True)
class ExecutionInfo:
    """What identifies the execution a run of events belongs to (from the log's head)."""

    execution_arn: str
    state_machine_arn: str = ""
    name: str = ""
    execution_type: Literal["STANDARD", "EXPRESS"] = "STANDARD"
    redrive_count: int = 0


@dataclass(frozen=True, slots=True)
class HookEvent:
    """One thing that happened to an execution, as a hook sees it.

    ``event`` is the committed history event (AWS's shape: ``id``, ``type``,
    ``timestamp`` as epoch seconds or ISO text, its ``...EventDetails``);
    ``state_name`` the state it concerns (state and task events), ``id`` the
    history event id: (``execution.execution_arn``, ``id``) identifies a hook
    event exactly, so a hook can drop a repeat (the stream delivers at least once).
    """

    kind: HookKind
    execution: ExecutionInfo
    id: int
    timestamp: Any
    event: dict[str, Any] = field(default_factory=dict)
    state_name: str | None = None

    @property
    def dedup_key(self) -> str:
        """``<execution ARN>#<event id>``: the same for every delivery of this event."""
        return f"{self.execution.execution_arn}#{self.id}"


def kind_of(event_type: str) -> HookKind | None:
    """The hook kind of a history event type (None: no hook sees it)."""
    if event_type in EXECUTION_KINDS:
        return event_type  # type: ignore[return-value]
    if event_type.endswith("StateEntered"):
        return "StateEntered"
    if event_type.endswith("StateExited"):
        return "StateExited"
    if event_type in _NOT_TASK:
        return None
    for prefix in _TASK_PREFIXES:
        if event_type.startswith(prefix):
            rest = event_type[len(prefix) :]
            for suffix, kind in _TASK_SUFFIXES:
                if rest == suffix:
                    return kind
    return None


def hook_events(execution: ExecutionInfo, events: Iterable[dict[str, Any]]) -> Iterator[HookEvent]:
    """The hook events of ``execution``'s committed history ``events``, in their order.

    A state or task event names its state: state events by their details' ``name``;
    task events by the last ``StateEntered`` before them in ``events`` (None when the
    run of events does not include it: hooks that need it read the history).
    """
    state: str | None = None
    for event in events:
        event_type = str(event.get("type", ""))
        kind = kind_of(event_type)
        if event_type.endswith("StateEntered") or event_type.endswith("StateExited"):
            details = _details(event)
            name = details.get("name") if isinstance(details, dict) else None
            state = name if isinstance(name, str) else state
        if kind is None:
            continue
        identifier = event.get("id")
        yield HookEvent(
            kind=kind,
            execution=execution,
            id=identifier if isinstance(identifier, int) else 0,
            timestamp=event.get("timestamp"),
            event=event,
            state_name=None if kind in EXECUTION_KINDS else state,
        )


def _details(event: dict[str, Any]) -> Any:
    for key, value in event.items():
        if key.endswith("EventDetails"):
            return value
    return None
