"""Large Maps as child executions through the Stepper: partitions, duplicates, crashes, stops."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stepflow.asl import parse
from stepflow.engine import RunTask
from stepflow.runtime import InMemoryBus, InMemoryLog, Stepper
from stepflow.runtime.outcome import TaskOutcome
from stepflow.runtime.ports import ExecutionRecord
from stepflow.testing import execute
from stepflow.testing.handlers import run_handler

FN = "arn:aws:lambda:us-east-1:123456789012:function:"
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:Big"
ITEMS = 25

DEFINITION = {
    "StartAt": "Init",
    "States": {
        "Init": {"Type": "Pass", "Assign": {"factor": 3}, "Next": "Each"},
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrency": 4,
            "ItemProcessor": {
                "StartAt": "Work",
                "States": {
                    "Work": {"Type": "Task", "Resource": FN + "work", "Next": "Pause"},
                    "Pause": {"Type": "Wait", "Seconds": 2000, "Next": "Shape"},
                    "Shape": {
                        "Type": "Pass",
                        "Parameters": {
                            "r.$": "$",
                            "f.$": "$factor",
                            "run.$": "$$.Execution.Input.run",
                        },
                        "End": True,
                    },
                },
            },
            "ResultPath": "$.out",
            "End": True,
        },
    },
}
INPUT = {"items": list(range(ITEMS)), "run": "r1"}
MACHINE = parse(DEFINITION)
REFERENCE = execute(DEFINITION, INPUT, handlers={"work": lambda n: n * 2})


class FlakyLog(InMemoryLog):
    """Fails creates and commits at random, before or after writing."""

    def __init__(self, rng: random.Random, rate: float) -> None:
        super().__init__()
        self.rng, self.rate = rng, rate

    def _maybe(self) -> bool:
        return self.rng.random() < self.rate

    def create(self, record: ExecutionRecord, events: Any) -> None:
        if self._maybe():
            raise ConnectionError("crash before create")
        super().create(record, events)
        if self._maybe():
            raise ConnectionError("crash after create")

    def commit(
        self, record: ExecutionRecord, expected_seq: int, events: Any, *, fence: Any = None
    ) -> None:
        if self._maybe():
            raise ConnectionError("crash before commit")
        super().commit(record, expected_seq, events, fence=fence)
        if self._maybe():
            raise ConnectionError("crash after commit")


def stepper(log: InMemoryLog, bus: InMemoryBus, child_limit: int | None = 5) -> Stepper:
    def invoke(body: dict[str, Any]) -> TaskOutcome:
        command = RunTask(body["task_id"], body["resource"], body["input"], body["state_name"])
        return run_handler({"work": lambda n: n * 2}, command)

    return Stepper(
        log=log,
        bus=bus,
        definitions=lambda _: MACHINE,
        clock=lambda: bus.now,
        invoker=invoke,
        child_limit=child_limit,
    )


def drain(s: Stepper, bus: InMemoryBus, rng: random.Random | None = None) -> None:
    for _ in range(50_000):
        if not len(bus):
            return
        batch = bus.receive_batch(rng.randint(1, 10) if rng else 10)
        if rng is not None:
            rng.shuffle(batch)
            if rng.random() < 0.2:
                batch = batch + batch[:1]
        failed = {id(m) for m, _ in s.handle_batch(batch)}
        for message in batch:
            if id(message) in failed or (rng is not None and rng.random() < 0.1):
                continue
            bus.ack(message)
    raise AssertionError("the bus did not drain")


def partitions(log: InMemoryLog) -> dict[str, int]:
    return {arn: len(events) for arn, events in log._events.items()}


def test_a_large_map_runs_as_child_executions_with_the_inline_result() -> None:
    log, bus = InMemoryLog(), InMemoryBus(0.0)
    s = stepper(log, bus)
    record = s.start_execution(state_machine_arn=SM, name="e", input=INPUT, seed=1)
    drain(s, bus)
    final = log.get(record.execution_arn)
    assert final is not None and final.status == "SUCCEEDED"
    assert final.state["output"] == REFERENCE.result
    sizes = partitions(log)
    children = [arn for arn in sizes if ":execution:Big/Each:" in arn]
    assert len(children) == ITEMS  # one partition per item (and the map run's own records)
    assert len(sizes) == ITEMS + 4  # the parent, the run's head, config and one page of inputs
    parent = [e["type"] for e in log.history(record.execution_arn).events]
    assert parent.count("MapIterationStarted") == parent.count("MapIterationSucceeded") == ITEMS
    assert "MapRunStarted" not in parent  # an inline Map shows no map run
    assert "TaskScheduled" not in parent  # the items' own events live in their partitions
    child_history = [e["type"] for e in log.history(children[0]).events]
    assert child_history[0] == "ExecutionStarted" and "LambdaFunctionSucceeded" in child_history
    assert max(sizes[arn] for arn in children) < 20


def test_the_limit_keeps_small_maps_inline() -> None:
    log, bus = InMemoryLog(), InMemoryBus(0.0)
    s = stepper(log, bus, child_limit=None)
    record = s.start_execution(state_machine_arn=SM, name="e", input=INPUT, seed=1)
    drain(s, bus)
    assert list(partitions(log)) == [record.execution_arn]
    types = Counter(e["type"] for e in log.history(record.execution_arn).events)
    assert types == Counter(e["type"] for e in REFERENCE.history)


def test_stopping_the_parent_stops_its_running_children() -> None:
    log, bus = InMemoryLog(), InMemoryBus(0.0)
    s = stepper(log, bus)
    record = s.start_execution(state_machine_arn=SM, name="e", input=INPUT, seed=1)
    for _ in range(3):  # children created and waiting in their Wait states
        batch = bus.receive_batch(10)
        s.handle_batch(batch)
        for message in batch:
            bus.ack(message)
    s.stop_execution(record.execution_arn, error="Halt")
    drain(s, bus)
    statuses = Counter(r.status for arn, r in log._heads.items() if arn != record.execution_arn)
    assert statuses["RUNNING"] == 0 and statuses["ABORTED"] >= 1
    final = log.get(record.execution_arn)
    assert final is not None and final.status == "ABORTED"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_duplicates_reordering_and_crashes_never_change_the_outcome(seed: int) -> None:
    rng = random.Random(seed)
    log, bus = FlakyLog(rng, 0.05), InMemoryBus(0.0)
    s = stepper(log, bus)
    record = None
    while record is None:  # StartExecution is retried by its caller until it lands
        try:
            record = s.start_execution(state_machine_arn=SM, name="e", input=INPUT, seed=1)
        except ConnectionError:
            continue
    drain(s, bus, rng)
    final = log.get(record.execution_arn)
    assert final is not None and final.status == "SUCCEEDED"
    assert final.state["output"] == REFERENCE.result
    history = log.history(record.execution_arn).events
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    types = Counter(e["type"] for e in history)
    assert types["MapIterationStarted"] == types["MapIterationSucceeded"] == ITEMS
    assert len(partitions(log)) == ITEMS + 4
