"""The outcome of an execution, as DescribeExecution and GetExecutionHistory report it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import FrozenInstanceError, dataclass
from typing import Any, Literal

from stepflow.testing.collection import young_collections_only

ExecutionStatus = Literal["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"]


@dataclass(frozen=True, slots=True)
class TaskAttempt:
    """One attempt of a Task state run (a Retry makes more), read from its task events.

    Attributes:
        input: what was scheduled, parsed (a Lambda function's or an activity's
            ``input``, an integration's ``parameters``); None if scheduling failed.
        status: ``SUCCEEDED``, ``FAILED`` (failed, or could not be scheduled, started
            or submitted), ``TIMED_OUT``, or ``RUNNING`` (no end recorded).
        output: the task's result, parsed (succeeded attempts).
        error: the error of a failed or timed-out attempt.
        cause: its cause.
    """

    input: Any
    status: str
    output: Any = None
    error: str | None = None
    cause: str | None = None


@dataclass(frozen=True, slots=True)
class StateRun:
    """One run of a state: what it was given and what it passed on, parsed from JSON.

    Attributes:
        name: the state's name.
        type: the state's type as the history names it (``Task``, ``Map``, ``Pass``...).
        input: the state's input (``stateEnteredEventDetails.input``).
        output: its output (``stateExitedEventDetails.output``); None if it never exited.
        exited: whether the state exited (False: it failed, or the execution ended in it).
        entered_event_id: the id of its ``...StateEntered`` event.
        attempts: a Task state's attempts in order (each retry is one more; empty for
            other states); the run's ``input`` and ``output`` are the state's, around them.
    """

    name: str
    type: str
    input: Any
    output: Any
    exited: bool
    entered_event_id: int
    attempts: tuple[TaskAttempt, ...] = ()


HistoryReader = Callable[[], list[dict[str, Any]]]
"""Reads a history snapshot when called (see :class:`ExecutionResult`)."""


class ExecutionResult:
    """A finished execution (immutable).

    Attributes:
        status: ``SUCCEEDED``, ``FAILED``, ``TIMED_OUT`` or ``ABORTED``.
        output: the output as JSON text (as DescribeExecution returns it), or None.
        error: the error name of a failed execution.
        cause: the cause of a failed execution.
        history: the history events, each a dict in GetExecutionHistory shape.

    ``read_history`` (instead of ``history``) reads the history when it is first
    asked for (:attr:`history`, :meth:`states`, equality...), once: an in-memory
    execution's history is kept as stored until then, and decoding it was most of
    what recording it cost (docs/benchmarks.md, issue 18).
    """

    __slots__ = ("_history", "_read", "cause", "error", "output", "status")

    status: ExecutionStatus
    output: str | None
    error: str | None
    cause: str | None
    _history: list[dict[str, Any]] | None
    _read: HistoryReader | None

    def __init__(
        self,
        status: ExecutionStatus,
        output: str | None = None,
        error: str | None = None,
        cause: str | None = None,
        history: list[dict[str, Any]] | None = None,
        *,
        read_history: HistoryReader | None = None,
    ) -> None:
        if history is not None and read_history is not None:
            raise TypeError("pass history or read_history, not both")
        fields = {"status": status, "output": output, "error": error, "cause": cause}
        for name, value in fields.items():
            object.__setattr__(self, name, value)
        if read_history is None:
            object.__setattr__(self, "_history", [] if history is None else history)
        else:
            object.__setattr__(self, "_history", None)
        object.__setattr__(self, "_read", read_history)

    @property
    def history(self) -> list[dict[str, Any]]:
        """The history events, each a dict in GetExecutionHistory shape (read once)."""
        events = self._history
        if events is None:
            assert self._read is not None
            with young_collections_only():  # fresh events only: a full collection finds nothing
                events = self._read()
            object.__setattr__(self, "_history", events)
            object.__setattr__(self, "_read", None)
        return events

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def _fields(self) -> tuple[Any, ...]:
        return (self.status, self.output, self.error, self.cause, self.history)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, ExecutionResult)
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # as before: the history is a list

    def __reduce__(self) -> tuple[Any, ...]:
        """Copied and pickled with its history read (as a dataclass would be)."""
        return (ExecutionResult, (self.status, self.output, self.error, self.cause, self.history))

    def __repr__(self) -> str:
        return (
            f"ExecutionResult(status={self.status!r}, output={self.output!r}, "
            f"error={self.error!r}, cause={self.cause!r}, history={self.history!r})"
        )

    @property
    def result(self) -> Any:
        """The output parsed from JSON (None when there is no output)."""
        return None if self.output is None else json.loads(self.output)

    @property
    def succeeded(self) -> bool:
        """Whether the execution succeeded."""
        return self.status == "SUCCEEDED"

    def states_entered(self) -> list[str]:
        """The names of the states entered, in order (handy in assertions)."""
        return [
            e["stateEnteredEventDetails"]["name"]
            for e in self.history
            if "stateEnteredEventDetails" in e
        ]

    def states(self, name: str) -> list[StateRun]:
        """Every run of state ``name``, in the order entered (Map iterations, loops).

        A run is paired with its exit by following ``previousEventId`` back from the
        ``...StateExited`` event, so interleaved Map iterations pair correctly. Only this
        execution's history is read (a Map run as child executions keeps its own).
        """
        by_id = {int(e["id"]): e for e in self.history}
        exits: dict[int, dict[str, Any]] = {}
        for event in self.history:
            details = event.get("stateExitedEventDetails")
            if details is None or details.get("name") != name:
                continue
            entered = _entered_before(by_id, event, name)
            if entered is not None:
                exits.setdefault(entered, details)
        attempts = _attempts(by_id, self.history, name)
        runs = []
        for event in self.history:
            details = event.get("stateEnteredEventDetails")
            if details is None or details.get("name") != name:
                continue
            exit_details = exits.get(int(event["id"]))
            runs.append(
                StateRun(
                    name,
                    str(event["type"]).removesuffix("StateEntered"),
                    _parsed(details.get("input")),
                    None if exit_details is None else _parsed(exit_details.get("output")),
                    exit_details is not None,
                    int(event["id"]),
                    tuple(attempts.get(int(event["id"]), ())),
                )
            )
        return runs

    def state(self, name: str) -> StateRun:
        """The last run of state ``name`` (see :meth:`states`); KeyError if never entered."""
        runs = self.states(name)
        if not runs:
            entered = ", ".join(dict.fromkeys(self.states_entered())) or "none"
            raise KeyError(f"state {name!r} was never entered (entered: {entered})")
        return runs[-1]

    def to_dict(self) -> dict[str, Any]:
        """The result as one JSON-ready object (what ``stepflow run --json`` prints)."""
        return {
            "status": self.status,
            "output": self.output,
            "result": self.result,
            "error": self.error,
            "cause": self.cause,
            "history": self.history,
        }


def _entered_before(
    by_id: dict[int, dict[str, Any]], event: dict[str, Any], name: str
) -> int | None:
    """The id of the ``...StateEntered`` event of ``name`` that ``event``'s chain leads back to."""
    current = by_id.get(int(event.get("previousEventId") or 0))
    seen = 0
    while current is not None and seen <= len(by_id):
        details = current.get("stateEnteredEventDetails")
        if details is not None and details.get("name") == name:
            return int(current["id"])
        current = by_id.get(int(current.get("previousEventId") or 0))
        seen += 1
    return None


_TASK_EVENTS = ("LambdaFunction", "Activity", "Task")
_ENDS = {
    "Succeeded": "SUCCEEDED",
    "Failed": "FAILED",
    "TimedOut": "TIMED_OUT",
    "StartFailed": "FAILED",
    "SubmitFailed": "FAILED",
    "ScheduleFailed": "FAILED",
}


def _task_event(event: dict[str, Any]) -> str | None:
    """``Scheduled`` or the end (``Succeeded``...) a task event stands for; None otherwise."""
    kind = str(event.get("type", ""))
    for prefix in _TASK_EVENTS:
        rest = kind.removeprefix(prefix)
        if rest != kind and (rest == "Scheduled" or rest in _ENDS):
            return rest
    return None


def _details(event: dict[str, Any]) -> dict[str, Any]:
    return next((v for k, v in event.items() if k.endswith("EventDetails")), None) or {}


def _attempts(
    by_id: dict[int, dict[str, Any]], history: list[dict[str, Any]], name: str
) -> dict[int, list[TaskAttempt]]:
    """The task attempts of each run of ``name``, by the id of its ``...StateEntered`` event.

    An attempt starts at a ``...Scheduled`` event (or is a ``...ScheduleFailed`` one) and
    ends at the first end event whose ``previousEventId`` chain leads back to it.
    """
    scheduled: dict[int, tuple[int, int]] = {}  # Scheduled event id -> (entered id, index)
    found: dict[int, list[TaskAttempt]] = {}
    for event in history:
        step = _task_event(event)
        if step is None:
            continue
        details = _details(event)
        if step == "Scheduled" or step == "ScheduleFailed":
            entered = _nearest_entered(by_id, event)
            if entered is None or by_id[entered]["stateEnteredEventDetails"].get("name") != name:
                continue
            runs = found.setdefault(entered, [])
            if step == "ScheduleFailed":
                error, cause = details.get("error"), details.get("cause")
                runs.append(TaskAttempt(None, "FAILED", None, error, cause))
                continue
            scheduled[int(event["id"])] = (entered, len(runs))
            given = details.get("parameters", details.get("input"))
            runs.append(TaskAttempt(_parsed(given), "RUNNING"))
            continue
        start = _scheduled_before(by_id, event)
        if start is None or start not in scheduled:
            continue
        entered, index = scheduled.pop(start)
        runs = found[entered]
        runs[index] = TaskAttempt(
            runs[index].input,
            _ENDS[step],
            _parsed(details.get("output")) if step == "Succeeded" else None,
            details.get("error"),
            details.get("cause"),
        )
    return found


def _nearest_entered(by_id: dict[int, dict[str, Any]], event: dict[str, Any]) -> int | None:
    """The id of the first ``...StateEntered`` event on ``event``'s ``previousEventId`` chain."""
    current = by_id.get(int(event.get("previousEventId") or 0))
    seen = 0
    while current is not None and seen <= len(by_id):
        if "stateEnteredEventDetails" in current:
            return int(current["id"])
        current = by_id.get(int(current.get("previousEventId") or 0))
        seen += 1
    return None


def _scheduled_before(by_id: dict[int, dict[str, Any]], event: dict[str, Any]) -> int | None:
    """The id of the ``...Scheduled`` event ``event``'s ``previousEventId`` chain leads to."""
    current = by_id.get(int(event.get("previousEventId") or 0))
    seen = 0
    while current is not None and seen <= len(by_id):
        if _task_event(current) == "Scheduled":
            return int(current["id"])
        if "stateEnteredEventDetails" in current:
            return None
        current = by_id.get(int(current.get("previousEventId") or 0))
        seen += 1
    return None


def _parsed(text: Any) -> Any:
    """A history detail's JSON text, parsed (text that is not JSON, as is)."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text
