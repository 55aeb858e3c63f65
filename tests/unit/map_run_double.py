"""A test double of the runtime side of a distributed Map (the real one is the map run coordinator).

It answers ``StartMapRun`` the way the contract says the runtime does: child inputs
from :func:`stepflow.engine.map_items.child_inputs`, one child execution per input
(run by the real engine, its Task states answered by handlers), the tolerated
failure thresholds, and one ``MapRunFinished`` back to the parent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from stepflow.asl.machine import StateMachine
from stepflow.engine import (
    Complete,
    Decision,
    ExecutionState,
    MapRunFinished,
    RunTask,
    Start,
    StartChild,
    StartMapRun,
    TaskFailed,
    TaskSucceeded,
    decide,
    new_child_execution,
)
from stepflow.engine.map_items import child_inputs
from stepflow.errors import StatesError

Handlers = Mapping[str, Callable[[Any], Any]]


class FakeMapRuns:
    """Runs map runs in memory; counts runs started and children run."""

    def __init__(self, objects: Mapping[tuple[str, str], Any] | None = None) -> None:
        self.objects = dict(objects or {})
        """A stand-in for S3: ``(Bucket, Key)`` to the parsed JSON of the object."""
        self.started = 0
        self.children = 0
        self.inputs: list[Any] = []
        self.events: list[dict[str, Any]] = []

    def drive(self, sm: StateMachine, decision: Decision, handlers: Handlers) -> ExecutionState:
        """Answer the parent's commands until it ends (or asks for nothing more)."""
        state = decision.state
        self.events.extend(decision.events)
        pending = list(decision.commands)
        while pending:
            command = pending.pop(0)
            event: Any = None
            if isinstance(command, StartMapRun):
                event = self._run(sm, state, command, handlers)
            elif isinstance(command, RunTask):
                event = _task(command, handlers)
            if event is not None:
                step = decide(sm, state, event, 2.0)
                state = step.state
                self.events.extend(step.events)
                pending.extend(step.commands)
        return state

    def _run(
        self, sm: StateMachine, parent: ExecutionState, command: StartMapRun, handlers: Handlers
    ) -> MapRunFinished:
        self.started += 1
        spec = command.spec
        items = spec["items"]
        if spec["reader"] is not None:  # a JSON object in the stand-in S3
            reader = spec["reader"]
            params = reader["parameters"]
            items = self.objects[(params["Bucket"], params["Key"])]
            if not isinstance(items, list):
                cause = "Attempting to map over non-iterable node."
                return MapRunFinished(
                    command.run_id, "FAILED", None, "States.ItemReaderFailed", cause
                )
            items = items[: reader["max_items"]] if reader["max_items"] else items
        try:
            inputs = list(child_inputs(sm, spec, items or []))
        except StatesError as exc:
            return MapRunFinished(command.run_id, "FAILED", None, exc.error, exc.cause)
        results: list[Any] = []
        failures = 0
        total = len(inputs)
        for child in inputs:
            self.children += 1
            self.inputs.append(child.input)
            start = StartChild(f"c{child.index}", spec["machine"], child.input, {})
            state = new_child_execution(parent, parent.execution_arn, start)
            end = self._child(sm, state, handlers)
            if end.status == "SUCCEEDED":
                results.append(end.output)
                continue
            failures += 1
            count, pct = spec["tolerated_count"], spec["tolerated_percentage"]
            within = (count is not None and failures <= count) or (
                pct is not None and failures * 100.0 / total <= pct
            )
            if not within:
                error = "States.ExceedToleratedFailureThreshold"
                cause = "The specified tolerated failure threshold was exceeded"
                if count is None and pct is None:
                    error, cause = end.error or "States.Runtime", end.cause
                return MapRunFinished(command.run_id, "FAILED", None, error, cause)
            results.append({"Error": end.error, "Cause": end.cause})
        return MapRunFinished(command.run_id, "SUCCEEDED", results)

    def _child(self, sm: StateMachine, state: ExecutionState, handlers: Handlers) -> Complete:
        """Run one child execution to its end (its own distributed Maps included)."""
        decision = decide(sm, state, Start(), 2.0)
        pending = list(decision.commands)
        while True:
            done = next((c for c in decision.commands if isinstance(c, Complete)), None)
            if done is not None:
                return done
            command = pending.pop(0)
            event: Any = None
            if isinstance(command, StartMapRun):
                event = self._run(sm, decision.state, command, handlers)
            elif isinstance(command, RunTask):
                event = _task(command, handlers)
            if event is not None:
                decision = decide(sm, decision.state, event, 2.0)
                pending.extend(decision.commands)


def _task(command: RunTask, handlers: Handlers) -> TaskSucceeded | TaskFailed:
    try:
        return TaskSucceeded(command.task_id, handlers[command.resource](command.input))
    except Exception as exc:
        return TaskFailed(command.task_id, type(exc).__name__, str(exc))
