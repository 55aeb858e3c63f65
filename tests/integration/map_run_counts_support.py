"""Shared by the map-run count tests (test_map_run_counts*.py): a log tests race on,
the fixture that gives it on the in-memory log and on DynamoDB (moto), and the steps
and checks of their schedules.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from stepflow.engine import StartMapRun
from stepflow.runtime import InMemoryBus, InMemoryLog, Message, Stepper
from stepflow.runtime.map_run_state import RunHead, map_run_message
from stepflow.runtime.ports import ExecutionRecord

from tests.moto_env import offline_aws
from tests.unit import map_run_support as support
from tests.unit.map_run_support import (
    KEY,
    PARENT,
    REVISION,
    RUN_ID,
    MeteredLog,
    children,
    start_message,
)


class RacingLog(MeteredLog):
    """A metered log whose reads and commits of the run's head tests can interpose on."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.stale_head: ExecutionRecord | None = None
        """Returned once by the next read of the run's head (a read from before a commit)."""
        self.before_commit: list[Any] = []
        """Called (once each) before the next commit of the run's head: a racing delivery."""
        self.conflicts = 0

    def get(self, execution_arn: str) -> ExecutionRecord | None:
        if execution_arn == KEY and self.stale_head is not None:
            stale, self.stale_head = self.stale_head, None
            return stale
        found: ExecutionRecord | None = self.inner.get(execution_arn)
        return found

    def commit(
        self, record: ExecutionRecord, expected_seq: int, events: Any, *, fence: Any = None
    ) -> None:
        if record.execution_arn == KEY and self.before_commit:
            self.before_commit.pop(0)()
        try:
            super().commit(record, expected_seq, events, fence=fence)
        except Exception:
            if record.execution_arn == KEY:
                self.conflicts += 1
            raise


@pytest.fixture(params=["memory", "dynamodb"])
def log(request: pytest.FixtureRequest) -> Iterator[RacingLog]:
    """The in-memory log, and the DynamoDB log on moto."""
    if request.param == "memory":
        yield RacingLog(InMemoryLog())
        return
    boto3 = pytest.importorskip("boto3")
    from stepflow.aws import DynamoDBLog, create_table

    with pytest.MonkeyPatch.context() as env, offline_aws(env):
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "stepflow-counts")
        yield RacingLog(DynamoDBLog("stepflow-counts", client=client))


def head(log: Any) -> RunHead:
    record = log.get(KEY)
    assert record is not None
    return RunHead.from_json(record.state)


def deliver(s: Stepper, bus: InMemoryBus, messages: list[Message]) -> None:
    """Deliver ``messages`` as one batch, which must not fail (no visibility timeout wait)."""
    assert s.handle_batch(messages) == []
    for message in messages:
        bus.ack(message)


def take(bus: InMemoryBus, **fields: Any) -> list[Message]:
    """The queued messages to the run whose body has ``fields`` (not removed)."""
    queued = bus.receive_batch(1000)
    return [
        m
        for m in queued
        if m.execution_arn == KEY and all(m.body.get(k) == v for k, v in fields.items())
    ]


def assert_exact(log: Any) -> None:
    """Every delivery applied: the run's counts are its children's statuses, none running."""
    final = head(log)
    statuses = Counter(child.status for child in children(log))
    assert "RUNNING" not in statuses
    assert {k: v for k, v in final.done.items() if v} == dict(statuses), final
    assert final.running == {}
    assert final.done_items == final.done  # an item per child


def fail_with_one_report_in_flight(s: Stepper, bus: InMemoryBus) -> tuple[Message, Message]:
    """Items [1, "bad"], both running: child 0 succeeds, child 1 fails, and the run fails on
    child 1's report while child 0's report is still queued.

    Returns child 0's report (in flight) and child 0's start message (to deliver again).
    """
    bus.send(start_message([1, "bad"], max_concurrency=2))
    deliver(s, bus, bus.receive_batch(10))
    kids = bus.receive_batch(10)
    deliver(s, bus, kids)  # both children run to their end; their reports are queued
    [late] = take(bus, status="SUCCEEDED")
    deliver(s, bus, take(bus, status="FAILED"))
    assert head(s.log).status == "FAILED" and head(s.log).running == {"0": 1}
    [child0] = [m for m in kids if m.body.get("position") == 0]
    return late, child0


@contextlib.contextmanager
def working(work: Callable[[Any], Any] | None = None) -> Iterator[None]:
    """``support.work`` replaced for the block: by default the "bad" items now succeed."""
    original = support.work
    support.work = work or (lambda n: 0 if n == "bad" else original(n))  # type: ignore[assignment]
    try:
        yield
    finally:
        support.work = original  # type: ignore[assignment]


def redrive_message(items: list[Any], seq: int = 7, parent_redrive: int = 1) -> Message:
    """The redriven parent's StartMapRun (its redrive count is ``parent_redrive``)."""
    command = StartMapRun(RUN_ID, support.spec(items, max_concurrency=2))
    return map_run_message(PARENT, f"{PARENT}#{seq}#0", command, REVISION, parent_redrive)
