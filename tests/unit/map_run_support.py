"""Helpers of the map run tests: a stepper over any log, a metering log, a StartMapRun."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

from stepflow.asl import parse
from stepflow.engine import CancelMapRun, RunTask, StartMapRun
from stepflow.runtime import InMemoryBus, Message, Stepper
from stepflow.runtime.map_run_state import map_run_message, run_key
from stepflow.runtime.outcome import TaskOutcome
from stepflow.runtime.ports import CoordinationLog, ExecutionRecord
from stepflow.testing.handlers import run_handler

FN = "arn:aws:lambda:us-east-1:123456789012:function:"
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:Batch"
REVISION = SM + ":3f2a"
PARENT = "arn:aws:states:us-east-1:123456789012:execution:Batch:parent-1"
RUN_ID = "0b6c2d4e-run"
MAP_RUN_ARN = f"arn:aws:states:us-east-1:123456789012:mapRun:Batch/Each:{RUN_ID}"

DEFINITION = {
    "StartAt": "Each",
    "States": {
        "Each": {
            "Type": "Map",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Work",
                "States": {
                    "Work": {"Type": "Task", "Resource": FN + "work", "Next": "Shape"},
                    "Shape": {"Type": "Pass", "Parameters": {"r.$": "$"}, "End": True},
                },
            },
            "End": True,
        }
    },
}
MACHINE = parse(DEFINITION)


def work(n: Any) -> Any:
    """The child's Lambda: doubles numbers, fails on the string "bad"."""
    if n == "bad":
        raise ValueError("bad item")
    return n * 2


class MeteredLog:
    """Wraps a log and counts its writes per key (create, commit, clear/keep_outbox, lease)."""

    def __init__(self, inner: CoordinationLog) -> None:
        self.inner = inner
        self.writes: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def create(self, record: ExecutionRecord, events: Any) -> None:
        self.writes[record.execution_arn] += 1
        self.inner.create(record, events)

    def commit(
        self, record: ExecutionRecord, expected_seq: int, events: Any, *, fence: Any = None
    ) -> None:
        self.inner.commit(record, expected_seq, events, fence=fence)
        self.writes[record.execution_arn] += 1

    def clear_outbox(self, execution_arn: str, seq: int) -> None:
        self.writes[execution_arn] += 1
        self.inner.clear_outbox(execution_arn, seq)

    def keep_outbox(self, record: ExecutionRecord, messages: Any) -> None:
        self.writes[record.execution_arn] += 1
        self.inner.keep_outbox(record, messages)


def stepper(log: Any, bus: InMemoryBus, **options: Any) -> Stepper:
    """A stepper running the test machine, its Lambda inline."""
    calls: Counter[Any] = Counter()

    def invoke(body: dict[str, Any]) -> TaskOutcome:
        calls[repr(body["input"])] += 1
        command = RunTask(body["task_id"], body["resource"], body["input"], body["state_name"])
        return run_handler({"work": work}, command)

    s = Stepper(
        log=log,
        bus=bus,
        definitions=lambda _: MACHINE,
        clock=lambda: bus.now,
        invoker=invoke,
        **options,
    )
    s.calls = calls  # type: ignore[attr-defined]
    return s


def spec(items: list[Any] | None, **fields: Any) -> dict[str, Any]:
    """A StartMapRun spec as the engine builds it (mapspec.md)."""
    base: dict[str, Any] = {
        "map_run_arn": MAP_RUN_ARN,
        "run_id": RUN_ID,
        "execution_arn": PARENT,
        "state_name": "Each",
        "machine": "/Each",
        "execution_type": "STANDARD",
        "items": items,
        "reader": None,
        "batcher": None,
        "scope": {"input": {}, "context": {}, "variables": {}},
        "max_concurrency": 0,
        "tolerated_count": None,
        "tolerated_percentage": None,
        "writer": None,
        "label": None,
        "role_arn": "arn:aws:iam::123456789012:role/R",
        "execution_role": "arn:aws:iam::123456789012:role/R",
    }
    base.update(fields)
    return base


def start_message(
    items: list[Any] | None, seq: int = 1, parent_redrive: int = 0, **fields: Any
) -> Message:
    """The parent's outbox message that starts the run (its redrive: ``parent_redrive`` > 0)."""
    command = StartMapRun(RUN_ID, spec(items, **fields))
    return map_run_message(PARENT, f"{PARENT}#{seq}#0", command, REVISION, parent_redrive)


def cancel_message(seq: int = 9) -> Message:
    """The parent's outbox message that cancels the run."""
    return map_run_message(PARENT, f"{PARENT}#{seq}#0", CancelMapRun(RUN_ID), REVISION)


KEY = run_key(PARENT, RUN_ID)


def drain(
    s: Stepper,
    bus: InMemoryBus,
    rng: random.Random | None = None,
    *,
    watch: list[int] | None = None,
    limit: int = 200_000,
) -> list[Message]:
    """Deliver until the bus is empty; return the messages sent to the parent.

    With ``rng``: random batch sizes, shuffled, duplicated and unacked deliveries.
    ``watch`` collects the run's running window after each batch.
    """
    to_parent: list[Message] = []
    for _ in range(limit):
        if not len(bus):
            return to_parent
        batch = bus.receive_batch(rng.randint(1, 10) if rng else 10)
        if rng is not None:
            rng.shuffle(batch)
            if rng.random() < 0.2:
                batch = batch + batch[:1]
        mine = [m for m in batch if m.execution_arn != PARENT]
        to_parent.extend(m for m in batch if m.execution_arn == PARENT)
        failed = {id(m) for m, _ in s.handle_batch(mine)} if mine else set()
        if watch is not None:
            head = s.log.get(KEY)
            if head is not None:
                watch.append(len(head.state["running"]))
        for message in batch:
            if id(message) in failed or (rng is not None and rng.random() < 0.1):
                continue
            bus.ack(message)
    raise AssertionError("the bus did not drain")


def finished(to_parent: list[Message]) -> list[dict[str, Any]]:
    """The distinct MapRunFinished bodies the parent received (by message id)."""
    seen: dict[str, dict[str, Any]] = {}
    for message in to_parent:
        if message.body.get("type") == "MapRunFinished":
            seen[message.id] = message.body
    return list(seen.values())


def children(log: Any) -> Iterator[ExecutionRecord]:
    """The run's child executions in the log, every one (a position never started skipped)."""
    run = log.get(KEY)
    total = int(run.state.get("children") or 0) if run is not None else 0
    for position in range(total):
        record = log.get(
            f"arn:aws:states:us-east-1:123456789012:execution:Batch/Each:{RUN_ID}-{position}"
        )
        if record is not None:
            yield record
