"""The status of each state of an execution, read from its history events.

A state *instance* starts at its ``...StateEntered`` event. Events are tied to
instances through ``previousEventId``: an event belongs to the instance of the
event before it, an exit hands the thread back to the enclosing Parallel or
Map, and a ``ParallelState...``/``MapState...``/``MapIteration...`` event
belongs to the nearest enclosing instance of that type still running its body.

An instance ends as:

- ``succeeded``: exited with no failure pending (a failure a Retrier retried
  is forgotten when the next attempt is scheduled);
- ``caught``: exited after a failure, so a Catcher took the error;
- ``failed`` / ``timed-out``: never exited after a failure (``...TimedOut``
  events give ``timed-out``); a Fail state and a Choice whose no rule matched
  are ``failed`` too;
- ``aborted``: cut short without failing itself (the execution was stopped, a
  sibling branch failed, or the execution ended around it);
- ``timed-out`` as well when the execution timed out while it ran;
- ``running``: entered, not exited, and neither the enclosing Parallel or Map
  nor the execution has ended (when one of them ends, what still runs inside
  it becomes ``failed``, ``timed-out`` or ``aborted`` as above).

A state with several instances (Map iterations, loops, retries of a whole
branch) gets the worst of their statuses, in the order failed, timed-out,
aborted, running, caught, succeeded. After a redrive (``ExecutionRedriven``)
only the instances of the latest run that entered the state count, so a
redriven state that now succeeds shows ``succeeded``. Likewise when a Retrier
starts a Parallel or Map again (its ``...StateStarted`` once more), the states of
the failed attempt are forgotten: only the latest attempt's instances count.
States never entered are ``not-run``; that includes the states inside a
distributed Map, whose iterations run as child executions with histories of
their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

Status = Literal["succeeded", "failed", "caught", "running", "aborted", "timed-out", "not-run"]

#: Every status, worst first (the order used to merge several instances of a state).
STATUSES: Final[tuple[Status, ...]] = (
    "failed",
    "timed-out",
    "aborted",
    "running",
    "caught",
    "succeeded",
    "not-run",
)
_RANK = {status: rank for rank, status in enumerate(STATUSES)}
_WALK = 256  # the longest chain of enclosing instances followed (hostile histories)
_COMPOSITE_ENDS = ("StateSucceeded", "StateFailed", "StateAborted")
_RETRIED = ("Scheduled", "Started", "Succeeded", "Submitted")
_EXECUTION_ENDS = {
    "ExecutionSucceeded",
    "ExecutionFailed",
    "ExecutionTimedOut",
    "ExecutionAborted",
}


@dataclass(slots=True, eq=False)
class _Instance:
    serial: int
    name: str
    type: str
    parent: _Instance | None
    generation: int
    open: bool = True
    body_done: bool = False
    failure: Status | None = None
    result: Status | None = None
    superseded: bool = False
    children: list[_Instance] = field(default_factory=list)
    # every instance started directly in this one's current attempt (children is
    # emptied when the body ends; this only when a retry starts a new attempt)
    attempt: list[_Instance] = field(default_factory=list)


def history_statuses(events: Iterable[Any]) -> dict[str, Status]:
    """Each state entered in ``events`` -> its status (states never entered are absent)."""
    reader = _Reader()
    for event in events:
        if isinstance(event, Mapping):
            reader.read(event)
    return reader.statuses()


class _Reader:
    def __init__(self) -> None:
        self.context: dict[int, _Instance | None] = {}
        self.instances: list[_Instance] = []
        # name -> its open instances by serial number, oldest first
        self.open: dict[str, dict[int, _Instance]] = {}
        self.generation = 0

    def read(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        event_id = event.get("id")
        if not isinstance(kind, str) or not isinstance(event_id, int):
            return
        previous = event.get("previousEventId")
        here = self.context.get(previous) if isinstance(previous, int) else None
        self.context[event_id] = self.place(kind, event, here)

    def place(
        self, kind: str, event: Mapping[str, Any], here: _Instance | None
    ) -> _Instance | None:
        """Apply one event; return the instance whose thread the event leaves running."""
        if kind.endswith("StateEntered"):
            return self.enter(kind, event, here)
        if kind.endswith("StateExited"):
            return self.exit(event, here)
        if kind in _EXECUTION_ENDS:
            self.end_execution(kind, here)
            return None
        if kind in ("ExecutionStarted", "ExecutionRedriven"):
            self.generation += kind == "ExecutionRedriven"
            return None
        for prefix, state_type in (("Parallel", "Parallel"), ("Map", "Map")):
            if kind.startswith(prefix) and not kind.startswith("MapRun"):
                return self.composite(kind, state_type, here)
        return self.task_event(kind, here)

    def enter(self, kind: str, event: Mapping[str, Any], here: _Instance | None) -> _Instance:
        details = event.get("stateEnteredEventDetails")
        name = details.get("name") if isinstance(details, Mapping) else None
        state_type = kind[: -len("StateEntered")]
        instance = _Instance(len(self.instances), str(name), state_type, here, self.generation)
        if state_type == "Fail":
            instance.failure = "failed"
        self.instances.append(instance)
        if here is not None:
            here.children.append(instance)
            here.attempt.append(instance)
        self.open.setdefault(instance.name, {})[instance.serial] = instance
        return instance

    def exit(self, event: Mapping[str, Any], here: _Instance | None) -> _Instance | None:
        details = event.get("stateExitedEventDetails")
        name = str(details.get("name")) if isinstance(details, Mapping) else None
        owner = self.walk(here, lambda i: i.open and i.name == name)
        if owner is None and self.open.get(str(name)):
            owner = next(reversed(self.open[str(name)].values()))
        if owner is None:
            return here
        self.close(owner, "caught" if owner.failure else "succeeded")
        return owner.parent

    def composite(self, kind: str, state_type: str, here: _Instance | None) -> _Instance | None:
        failed = kind.endswith("Failed") and not kind.startswith("MapIteration")
        started = kind == state_type + "StateStarted"
        skipped: list[_Instance] = []

        def fits(instance: _Instance) -> bool:
            # a retry's ...StateStarted restarts a body that ended
            restartable = started or not instance.body_done
            if instance.open and instance.type == state_type and restartable:
                return True
            skipped.append(instance)
            return False

        owner = self.walk(here, fits)
        if owner is None:
            return here
        if started and owner.attempt:
            self.supersede(owner)
            return owner
        if failed:
            for instance in skipped:  # a failure passing through (a Choice that matched nothing)
                if instance.open and instance.failure is None:
                    instance.failure = "failed"
            owner.failure = "failed"
        if kind.startswith(state_type + "State") and kind.endswith(_COMPOSITE_ENDS):
            owner.body_done = True
            self.close_inside(owner)
        return owner

    def task_event(self, kind: str, here: _Instance | None) -> _Instance | None:
        owner = self.walk(here, lambda i: i.open and not i.body_done)
        if owner is None:
            return here
        if kind.endswith("TimedOut"):
            owner.failure = "timed-out"
        elif kind.endswith("Failed"):
            owner.failure = "failed"
        elif kind.endswith("StateAborted"):
            self.close(owner, "aborted")
            return owner.parent
        elif kind.endswith(_RETRIED):
            owner.failure = None
        return owner

    def end_execution(self, kind: str, here: _Instance | None) -> None:
        if kind == "ExecutionFailed":
            self.walk(here, _fail_open)
        for instance in [i for same_name in self.open.values() for i in same_name.values()]:
            if instance.failure is not None:
                self.close(instance, instance.failure)
            else:
                self.close(instance, "timed-out" if kind == "ExecutionTimedOut" else "aborted")

    def close_inside(self, owner: _Instance) -> None:
        """A Parallel or Map is done: what still runs in it failed or was cut short."""
        stack = owner.children
        owner.children = []
        while stack:
            instance = stack.pop()
            if instance.open:
                self.close(instance, instance.failure or "aborted")
            stack.extend(instance.children)
            instance.children = []

    def supersede(self, owner: _Instance) -> None:
        """A retry starts ``owner`` again: its previous attempt no longer counts."""
        stack = owner.attempt
        owner.attempt, owner.children = [], []
        owner.body_done, owner.failure = False, None
        while stack:
            instance = stack.pop()
            instance.superseded = True
            if instance.open:
                self.close(instance, "aborted")
            stack.extend(instance.attempt)
            instance.attempt, instance.children = [], []

    @staticmethod
    def walk(start: _Instance | None, accept: Callable[[_Instance], bool]) -> _Instance | None:
        instance = start
        for _ in range(_WALK):
            if instance is None:
                return None
            if accept(instance):
                return instance
            instance = instance.parent
        return None

    def close(self, instance: _Instance, result: Status) -> None:
        instance.open = False
        instance.result = result
        same_name = self.open[instance.name]
        del same_name[instance.serial]
        if not same_name:
            del self.open[instance.name]

    def statuses(self) -> dict[str, Status]:
        latest: dict[str, int] = {}
        for instance in self.instances:
            if not instance.superseded:
                latest[instance.name] = max(latest.get(instance.name, 0), instance.generation)
        merged: dict[str, Status] = {}
        for instance in self.instances:
            if instance.superseded or instance.generation != latest[instance.name]:
                continue
            status: Status = instance.result if instance.result is not None else "running"
            known = merged.get(instance.name)
            if known is None or _RANK[status] < _RANK[known]:
                merged[instance.name] = status
        return merged


def _fail_open(instance: _Instance) -> bool:
    """Mark an open instance on the failing thread as failed; never stop the walk."""
    if instance.open and instance.failure is None:
        instance.failure = "failed"
    return False
