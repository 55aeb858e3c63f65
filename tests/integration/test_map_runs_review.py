"""Hostile deliveries to the map run coordinator (second reading of issue 14)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.engine import StartMapRun
from stepflow.runtime import InMemoryBus, InMemoryLog, Message
from stepflow.runtime.map_run_state import RunHead, map_run_message

from tests.moto_env import offline_aws
from tests.unit import map_run_support as support
from tests.unit.map_run_support import (
    KEY,
    PARENT,
    REVISION,
    RUN_ID,
    MeteredLog,
    cancel_message,
    children,
    drain,
    finished,
    start_message,
    stepper,
)


@pytest.fixture(params=["memory", "dynamodb"])
def log(request: pytest.FixtureRequest) -> Iterator[MeteredLog]:
    """The in-memory log, and the DynamoDB log on moto (the path that ships)."""
    if request.param == "memory":
        yield MeteredLog(InMemoryLog())
        return
    boto3 = pytest.importorskip("boto3")
    from stepflow.aws import DynamoDBLog, create_table

    with pytest.MonkeyPatch.context() as env, offline_aws(env):
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "stepflow-review")
        yield MeteredLog(DynamoDBLog("stepflow-review", client=client))


def redrive_message(items: list[Any], seq: int = 7, **fields: Any) -> Message:
    """The redriven parent's StartMapRun (its redrive count is 1)."""
    command = StartMapRun(RUN_ID, support.spec(items, **fields))
    return map_run_message(PARENT, f"{PARENT}#{seq}#0", command, REVISION, 1)


def head(log: Any) -> RunHead:
    record = log.get(KEY)
    assert record is not None
    return RunHead.from_json(record.state)


def test_a_redrive_before_the_aborted_children_reported_reruns_them_and_counts_once(
    log: MeteredLog,
) -> None:
    """Cancel with five children running, redrive before their stops are delivered.

    Their late ABORTED reports belong to the first run: the redriven run must run
    those items again, not count them as its own failures.
    """
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    items = list(range(20))
    bus.send(start_message(items, max_concurrency=5))
    first = bus.receive_batch(10)
    s.handle_batch(first)  # the run starts five children (their messages are queued)
    for m in first:
        bus.ack(m)
    bus.send(cancel_message())
    cancel = bus.receive_batch(10)
    run_only = [m for m in cancel if m.execution_arn == KEY]
    s.handle_batch(run_only)  # the run is aborted; the children's stops are queued
    for m in run_only:
        bus.ack(m)
    assert head(log).status == "ABORTED"
    bus.send(redrive_message(items, max_concurrency=5))  # the parent's redrive
    done = finished(drain(s, bus))
    assert [d["status"] for d in done] == ["SUCCEEDED"], done
    assert done[0]["output"] == [{"r": 2 * n} for n in items]
    final = head(log)
    assert final.done["SUCCEEDED"] == 20 and final.done["ABORTED"] == 0
    assert Counter(k.status for k in children(log)) == {"SUCCEEDED": 20}
    calls = s.calls  # type: ignore[attr-defined]
    assert all(calls[repr(n)] == 1 for n in items[5:])  # never stopped: run once
    # The stopped ones ran at most once per run (their first task was already queued).
    assert all(1 <= calls[repr(n)] <= 2 for n in items[:5])


def test_a_redrive_of_a_run_cancelled_before_it_started_runs_it(log: MeteredLog) -> None:
    """The parent was stopped before its run started, then redriven: the run runs."""
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    bus.send(cancel_message())
    drain(s, bus)
    bus.send(start_message([1, 2]))  # the first start, late
    assert finished(drain(s, bus)) == []
    bus.send(redrive_message([1, 2]))  # the parent's redrive
    done = finished(drain(s, bus))
    assert [d["status"] for d in done] == ["SUCCEEDED"], done
    assert done[0]["output"] == [{"r": 2}, {"r": 4}]


def test_a_duplicated_failure_report_after_the_redrive_restarted_the_child_is_not_counted(
    log: MeteredLog,
) -> None:
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    items: list[Any] = [1, 2, "bad", 4]
    bus.send(start_message(items, max_concurrency=1))
    [failed] = finished(drain(s, bus))
    assert failed["status"] == "FAILED"
    [old_report] = [
        m
        for m in bus.sent
        if m.execution_arn == KEY
        and m.body.get("type") == "ChildFinished"
        and m.body.get("status") == "FAILED"
    ]
    original = support.work
    try:
        support.work = lambda n: 0 if n == "bad" else original(n)  # type: ignore[assignment]
        bus.send(redrive_message(items, max_concurrency=1))
        batch = bus.receive_batch(10)
        s.handle_batch(batch)  # the run restarts the failed child (its message is queued)
        for m in batch:
            bus.ack(m)
        assert head(log).running == {"2": 1}
        s.handle_batch([old_report])  # the first run's report, delivered again
        assert head(log).done["FAILED"] == 0 and head(log).running == {"2": 1}
        done = finished(drain(s, bus))
    finally:
        support.work = original
    assert [d["status"] for d in done] == ["SUCCEEDED"], done
    final = head(log)
    assert final.done == {"SUCCEEDED": 4, "FAILED": 0, "TIMED_OUT": 0, "ABORTED": 0}
    assert final.restarted == {} and final.stale == []


def test_an_update_that_lost_the_race_with_the_end_leaves_the_ended_run_as_it_ended(
    log: MeteredLog,
) -> None:
    """UpdateMapRun checked the run was running; it ended before the update was applied."""
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    bus.send(start_message([1, 2], max_concurrency=1))
    [done] = finished(drain(s, bus))
    assert done["status"] == "SUCCEEDED"
    before = log.writes[KEY]
    s.map_runs().update(support.MAP_RUN_ARN, max_concurrency=9, tolerated_count=4)
    final = head(log)
    assert (final.max_concurrency, final.tolerated_count) == (1, None)
    assert log.writes[KEY] == before  # nothing written


def deliver_first(s: Any, bus: InMemoryBus, kind: str) -> None:
    """Deliver the queued messages of type ``kind`` to the run before the others."""
    batch = bus.receive_batch(10)
    mine = [m for m in batch if m.execution_arn == KEY and m.body.get("type") == kind]
    s.handle_batch(mine)
    for m in mine:
        bus.ack(m)


def test_a_child_queued_before_the_cancel_never_starts(log: MeteredLog) -> None:
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    items = list(range(20))
    bus.send(start_message(items, max_concurrency=5))
    first = bus.receive_batch(1)
    s.handle_batch(first)  # five child messages queued
    bus.ack(first[0])
    bus.send(cancel_message())
    deliver_first(s, bus, "CancelMapRun")  # the stop overtakes the children's starts
    assert finished(drain(s, bus)) == []
    assert list(children(log)) == []  # none created, none ran
    assert sum(s.calls.values()) == 0  # type: ignore[attr-defined]
    final = head(log)
    assert final.status == "ABORTED" and final.running == {} and sum(final.done.values()) == 0


def test_a_redrive_overtaking_the_children_of_the_cancelled_run_runs_each_item_once(
    log: MeteredLog,
) -> None:
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    items = list(range(20))
    bus.send(start_message(items, max_concurrency=5))
    first = bus.receive_batch(1)
    s.handle_batch(first)
    bus.ack(first[0])
    bus.send(cancel_message())
    deliver_first(s, bus, "CancelMapRun")
    bus.send(redrive_message(items, max_concurrency=5))
    deliver_first(s, bus, "StartMapRun")  # redriven before the first children arrive
    done = finished(drain(s, bus))
    assert [d["status"] for d in done] == ["SUCCEEDED"], done
    assert done[0]["output"] == [{"r": 2 * n} for n in items]
    assert all(s.calls[repr(n)] == 1 for n in items)  # type: ignore[attr-defined]
    final = head(log)
    assert final.done["SUCCEEDED"] == 20 and final.running == {} and final.stale == []


def test_a_stop_heard_after_the_parents_redrive_does_not_abort_the_run(log: MeteredLog) -> None:
    """The parent was stopped, then redriven, before its run heard the stop (queues reorder).

    The redrive's start reaches the still running run first, then the stale cancel (from
    before the redrive). The run must go on and report its end to the redriven parent:
    aborted by the stale cancel, it reported to nobody and the parent waited for ever
    (found by tests/model/chaos.py's RunnerChaosMachine).
    """
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    items = [1, 2, 3]
    bus.send(start_message(items, max_concurrency=1))
    first = bus.receive_batch(10)
    s.handle_batch(first)
    for m in first:
        bus.ack(m)
    assert head(log).status == "RUNNING"
    assert s.handle_batch([redrive_message(items, max_concurrency=1)]) == []  # overtakes
    assert s.handle_batch([cancel_message()]) == []  # the stop, heard late: stale
    assert head(log).status == "RUNNING" and head(log).parent_redrive == 1
    done = finished(drain(s, bus))
    assert [d["status"] for d in done] == ["SUCCEEDED"], done
    assert done[0]["output"] == [{"r": 2 * n} for n in items]
    assert done[0]["parent_redrive"] == 1  # the redriven parent takes it (decide.py)
