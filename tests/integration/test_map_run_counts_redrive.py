"""A redriven map run's counts against its children's ends, for the interleavings of issue 18.

As test_map_run_counts.py, for runs the parent redrives (once or twice): a child's late
report, its "never started" answer, its start or a Stop of the attempt before, heard after
the redrive, must neither lose a count, count a child twice, nor run a child again that
succeeded. Each test runs on the in-memory log and on the DynamoDB log (moto).
"""

from __future__ import annotations

from typing import Any

import pytest
from stepflow.runtime import InMemoryBus, Message
from stepflow.runtime.map_express import NOT_STARTED
from stepflow.runtime.map_run_state import child_execution_arn

from tests.integration.map_run_counts_support import (
    RacingLog,
    assert_exact,
    deliver,
    fail_with_one_report_in_flight,
    head,
    log,
    redrive_message,
    take,
    working,
)
from tests.unit import map_run_support as support
from tests.unit.map_run_support import KEY, children, drain, finished, start_message, stepper

__all__ = ["log"]  # the fixture, on the in-memory log and on DynamoDB (moto)


def test_a_redrive_before_a_late_report_counts_the_child_once_and_runs_it_once(
    log: RacingLog,
) -> None:
    """The run failed, heard child 0 "never started" (a duplicate start) and is redriven
    before child 0's own report arrives: child 0 succeeded, it is not run again, and the
    redriven run counts it once, whether its report comes before or after the refill."""
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    late, child0 = fail_with_one_report_in_flight(s, bus)
    deliver(s, bus, [child0])
    deliver(s, bus, take(bus, status=NOT_STARTED))
    with working():
        bus.send(redrive_message([1, "bad"]))
        deliver(s, bus, take(bus, type="StartMapRun"))
        deliver(s, bus, [late])  # the first attempt's report, after the refill
        done = finished(drain(s, bus))
    assert [d["status"] for d in done if d["parent_redrive"] == 1] == ["SUCCEEDED"], done
    assert_exact(log)
    assert head(log).done["SUCCEEDED"] == 2
    assert s.calls[repr(1)] == 1  # type: ignore[attr-defined]


def test_a_never_started_answer_redelivered_after_the_redrive_restarted_it_is_stale(
    log: RacingLog,
) -> None:
    """Child 0's start arrived after the run failed ("never started"); the redrive starts
    it; then that answer is delivered again. It concerns the attempt before: the run must
    wait for child 0's end and count it, not drop it from its window."""
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    bus.send(start_message([1, "bad"], max_concurrency=2))
    deliver(s, bus, bus.receive_batch(10))
    kids = bus.receive_batch(10)
    deliver(s, bus, [m for m in kids if m.body.get("position") == 1])
    deliver(s, bus, take(bus, status="FAILED"))  # the run fails, child 0 not started yet
    deliver(s, bus, [m for m in kids if m.body.get("position") == 0])
    [never] = take(bus, status=NOT_STARTED)
    deliver(s, bus, [never])
    assert log.get(child_execution_arn(support.MAP_RUN_ARN, 0)) is None
    with working():
        bus.send(redrive_message([1, "bad"]))
        deliver(s, bus, take(bus, type="StartMapRun"))
        assert head(log).running == {"0": 1, "1": 1}
        deliver(s, bus, [never])  # the answer of the attempt before, again
        assert head(log).running == {"0": 1, "1": 1}
        done = finished(drain(s, bus))
    assert [d["status"] for d in done if d["parent_redrive"] == 1] == ["SUCCEEDED"], done
    assert_exact(log)
    assert head(log).done["SUCCEEDED"] == 2
    assert s.calls[repr(1)] == 1  # type: ignore[attr-defined]


def test_a_second_redrive_does_not_start_again_a_child_that_succeeded_in_the_first_run(
    log: RacingLog,
) -> None:
    """The first run fails with positions 0-4 started; the redrive fails again after
    refilling only 0-2 (run again): the second redrive must still check 3 and 4, which
    succeeded in the first run (started anew, the run waited for them for ever)."""
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    items: list[Any] = ["bad", "bad", "bad", 3, 4]
    bus.send(start_message(items, max_concurrency=3, tolerated_count=2))
    deliver(s, bus, bus.receive_batch(10))
    deliver(s, bus, bus.receive_batch(10))  # children 0-2 fail; their reports are queued
    reports = take(bus, status="FAILED")
    for report, position in zip(reports, (3, 4, None), strict=True):
        deliver(s, bus, [report])  # each failure but the last refills the window
        if position is not None:
            [start] = [m for m in bus.receive_batch(100) if m.body.get("position") == position]
            deliver(s, bus, [start])
            deliver(s, bus, take(bus, status="SUCCEEDED"))
    assert head(log).status == "FAILED" and head(log).next == 5
    assert head(log).done["SUCCEEDED"] == 2
    bus.send(redrive_message(items, seq=7))
    [second] = [d for d in finished(drain(s, bus)) if d["parent_redrive"] == 1]
    assert second["status"] == "FAILED" and head(log).next == 3
    with working():
        bus.send(redrive_message(items, seq=9, parent_redrive=2))
        done = [d for d in finished(drain(s, bus)) if d["parent_redrive"] == 2]
    assert [d["status"] for d in done] == ["SUCCEEDED"], done
    assert_exact(log)
    assert head(log).done["SUCCEEDED"] == 5
    assert s.calls[repr(3)] == 1 and s.calls[repr(4)] == 1  # type: ignore[attr-defined]


def test_a_never_started_answer_heard_after_the_redrive_does_not_redrive_a_succeeded_child(
    log: RacingLog,
) -> None:
    """Child 0 succeeded (its report in flight), the run failed, a duplicate start of child 0
    was answered "never started", and the parent redrove the run before that answer was
    applied: child 0 (stale) is counted from its record, not restarted by a Redrive that
    does nothing on a succeeded child while its real report is dropped (RUNNING for ever)."""
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    late, child0 = fail_with_one_report_in_flight(s, bus)
    deliver(s, bus, [child0])
    [never] = take(bus, status=NOT_STARTED)
    with working():
        bus.send(redrive_message([1, "bad"]))
        deliver(s, bus, take(bus, type="StartMapRun"))
        deliver(s, bus, [never])  # the first attempt's answer, after the redrive
        assert not [m for m in bus.receive_batch(100) if m.body.get("position") == 0]
        deliver(s, bus, [late])
        done = finished(drain(s, bus))
    assert [d["status"] for d in done if d["parent_redrive"] == 1] == ["SUCCEEDED"], done
    assert_exact(log)
    assert head(log).done["SUCCEEDED"] == 2
    assert s.calls[repr(1)] == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("child0_fails", [False, True])
def test_a_never_started_answer_without_attempt_after_the_redrive_restarted_it_is_stale(
    log: RacingLog, child0_fails: bool
) -> None:
    """As the test above with an answer of before the upgrade (no "attempt"): the run runs,
    the position is not stale, so the answer is the attempt before's; taken for this
    attempt's, the run ended SUCCEEDED without child 0 (a placeholder in its output)."""
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    bus.send(start_message([1, "bad"], max_concurrency=2))
    deliver(s, bus, bus.receive_batch(10))
    kids = bus.receive_batch(10)
    deliver(s, bus, [m for m in kids if m.body.get("position") == 1])
    deliver(s, bus, take(bus, status="FAILED"))
    deliver(s, bus, [m for m in kids if m.body.get("position") == 0])
    [never] = take(bus, status=NOT_STARTED)
    deliver(s, bus, [never])
    body = {k: v for k, v in never.body.items() if k != "attempt"}
    old = Message(never.execution_arn, never.id, never.kind, body)
    original = support.work

    def redriven(n: Any) -> Any:
        if n == "bad":
            return 0
        if child0_fails:
            raise ValueError("bad item")
        return original(n)

    with working(redriven):
        bus.send(redrive_message([1, "bad"]))
        deliver(s, bus, take(bus, type="StartMapRun"))
        deliver(s, bus, [old])
        assert head(log).running == {"0": 1, "1": 1} and head(log).not_started == {}
        deliver(s, bus, [m for m in bus.receive_batch(100) if m.body.get("position") == 1])
        deliver(s, bus, take(bus, type="ChildFinished"))  # child 1 ends before child 0
        done = finished(drain(s, bus))
    assert_exact(log)
    expected = ["FAILED"] if child0_fails else ["SUCCEEDED"]
    assert [d["status"] for d in done if d["parent_redrive"] == 1] == expected
    assert len(list(children(log))) == 2


def test_a_stop_of_the_attempt_before_does_not_abort_the_child_the_redrive_runs_again(
    log: RacingLog,
) -> None:
    """Both children fail; the run fails on child 0's report and stops child 1 (ended, its
    report in flight); that Stop is late: it reaches child 1 as the redrive runs it again.
    Aimed at child 1's run before, it changes nothing; the redriven run succeeds. A stop
    of the redriven run (the parent stopped) then stops each of its children once."""
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    bus.send(start_message(["bad", "bad"], max_concurrency=2))
    deliver(s, bus, bus.receive_batch(10))
    deliver(s, bus, bus.receive_batch(10))  # both children fail; reports queued
    first, second = sorted(take(bus, status="FAILED"), key=lambda m: str(m.body["child_id"]))
    deliver(s, bus, [first])
    [stop] = [m for m in bus.receive_batch(100) if m.body.get("type") == "Stop"]
    bus.ack(stop)  # held back
    deliver(s, bus, [second])
    with working(lambda n: 0):
        bus.send(redrive_message(["bad", "bad"]))
        deliver(s, bus, take(bus, type="StartMapRun"))
        starts = [m for m in bus.receive_batch(100) if m.kind == "child"]
        deliver(s, bus, [*starts, stop])  # the old Stop reaches child 1 as it runs again
        done = finished(drain(s, bus))
    assert [d["status"] for d in done if d["parent_redrive"] == 1] == ["SUCCEEDED"], done
    assert_exact(log)
    assert [c.status for c in children(log)] == ["SUCCEEDED", "SUCCEEDED"]


def test_a_stop_of_the_redriven_run_stops_each_child_it_runs_once(log: RacingLog) -> None:
    bus = InMemoryBus(0.0)
    s = stepper(log, bus, inline_tasks=False)  # a child runs until its task's message
    bus.send(start_message(["bad", "bad"], max_concurrency=2))
    drain(s, bus)
    assert head(log).status == "FAILED"
    bus.send(redrive_message(["bad", "bad"]))
    deliver(s, bus, take(bus, type="StartMapRun"))
    deliver(s, bus, [m for m in bus.receive_batch(100) if m.kind == "child"])  # both run
    bus.send(support.cancel_message(seq=11))  # the parent stopped: its cancel (redrive 0)
    bus.send(Message(KEY, "cancel-1", "event", {"type": "CancelMapRun", "parent_redrive": 1}))
    deliver(s, bus, take(bus, type="CancelMapRun"))
    stops = [m for m in bus.receive_batch(100) if m.body.get("type") == "Stop"]
    assert sorted(m.execution_arn[-1] for m in stops) == ["0", "1"]
    assert {m.body["redrive"] for m in stops} == {1}
    deliver(s, bus, stops)  # before the children's tasks end
    drain(s, bus)
    assert [c.status for c in children(log)] == ["ABORTED", "ABORTED"]
    assert [c.state["redrive_count"] for c in children(log)] == [1, 1]
    assert head(log).status == "ABORTED"


def test_the_first_start_redelivered_after_the_redrive_does_not_redrive_the_run_again(
    log: RacingLog,
) -> None:
    """The parent's first StartMapRun, delivered late (at least once) after the run failed
    again on its one redrive: the run is not redriven by it (an item's Lambda run a third
    time, a third end told to the parent)."""
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    first = start_message([1, "bad"], max_concurrency=2)
    bus.send(first)
    finished(drain(s, bus))
    bus.send(redrive_message([1, "bad"]))  # the parent's one redrive; "bad" fails again
    [again] = [d for d in finished(drain(s, bus)) if d["parent_redrive"] == 1]
    assert again["status"] == "FAILED"
    bus.send(first)
    assert finished(drain(s, bus)) == []
    assert head(log).redrive_count == 1 and head(log).status == "FAILED"
    assert s.calls[repr("bad")] == 2  # type: ignore[attr-defined]


def test_a_child_start_of_the_attempt_before_does_not_run_the_child_behind_the_run(
    log: RacingLog,
) -> None:
    """The first redrive's Redrive of child 1, delivered again during the second redrive
    (before its refill reaches child 1), ran child 1 again behind the run's back: the
    refill found it SUCCEEDED, took it for a success of a run before and never counted it
    (found by the fuzz, seed 3133). Now the run answers it NOT_STARTED, and ignores that."""
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    items: list[Any] = ["bad", "bad"]
    bus.send(start_message(items, max_concurrency=1, tolerated_count=1))
    drain(s, bus)
    assert head(log).status == "FAILED"
    bus.send(redrive_message(items))
    deliver(s, bus, take(bus, type="StartMapRun"))
    deliver(s, bus, [m for m in bus.receive_batch(100) if m.kind == "child"])  # child 0 fails
    deliver(s, bus, take(bus, type="ChildFinished"))
    [restart] = [m for m in bus.receive_batch(100) if m.kind == "child"]  # child 1 again
    assert restart.body["position"] == 1 and restart.body["redrive"]
    drain(s, bus)
    assert head(log).status == "FAILED" and head(log).redrive_count == 1
    with working(lambda n: 0):
        bus.send(redrive_message(items, seq=9, parent_redrive=2))
        deliver(s, bus, take(bus, type="StartMapRun"))
        deliver(s, bus, [restart])  # the first redrive's Redrive of child 1, again
        deliver(s, bus, take(bus, type="ChildFinished"))
        done = finished(drain(s, bus))
    assert [d["status"] for d in done if d["parent_redrive"] == 2] == ["SUCCEEDED"], done
    assert_exact(log)
    assert head(log).done["SUCCEEDED"] == 2
    assert [c.state["redrive_count"] for c in children(log)] == [2, 2]
