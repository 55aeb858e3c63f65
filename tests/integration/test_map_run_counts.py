"""A map run's counts against its children's ends, for the hostile interleavings of issue 18.

DescribeMapRun's counts come from the run's head; each child's end is reported to it
once or more (duplicates, redeliveries). Once every delivery is applied, the counts must
equal the children's statuses, each child counted exactly once, however the reports,
the run's end and duplicated child starts interleave; a child whose start arrives after
its run ended never runs its first state. Each test runs on the in-memory log and on the
DynamoDB log (moto), the path that ships. The same with redrives of the run:
test_map_run_counts_redrive.py.
"""

from __future__ import annotations

from stepflow.runtime import InMemoryBus, Stepper
from stepflow.runtime.map_express import NOT_STARTED

from tests.integration.map_run_counts_support import (
    RacingLog,
    assert_exact,
    deliver,
    fail_with_one_report_in_flight,
    head,
    log,
    take,
)
from tests.unit.map_run_support import KEY, children, drain, finished, start_message, stepper

__all__ = ["log"]  # the fixture, on the in-memory log and on DynamoDB (moto)


def test_a_child_started_twice_whose_run_failed_in_between_is_counted(log: RacingLog) -> None:
    """The run's outbox is sent again by a concurrent delivery or a repair: a child's start
    comes twice. The second, after the run failed, says the child never started; it must
    not cancel the count of the child's own report that follows (counted 6, listed 7)."""
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    late, child0 = fail_with_one_report_in_flight(s, bus)
    deliver(s, bus, [child0])  # the duplicate start, after the run failed
    never = take(bus, status=NOT_STARTED)
    assert len(never) == 1  # the run hears "never started" before the child's report
    deliver(s, bus, never)
    deliver(s, bus, [late, late])  # the child's own report, delivered twice
    deliver(s, bus, never)  # and the "never started" again
    drain(s, bus)
    assert_exact(log)
    assert head(log).done["SUCCEEDED"] == 1 and head(log).done["FAILED"] == 1
    assert sum(s.calls.values()) == 2  # type: ignore[attr-defined]


def test_a_child_created_after_its_run_heard_it_never_started_does_not_run(
    log: RacingLog,
) -> None:
    """Two copies of a child's start: one read the run still running (before it failed)
    and creates the child only after the other's "never started" was applied. The child
    must not run its first state (it did, and succeeded): it ends ABORTED, counted once."""
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    bus.send(start_message([1, "bad"], max_concurrency=2))
    deliver(s, bus, bus.receive_batch(10))
    kids = bus.receive_batch(10)
    [child0] = [m for m in kids if m.body.get("position") == 0]
    running = log.get(KEY)  # the head as the slow copy read it
    deliver(s, bus, [m for m in kids if m is not child0])  # child 1 fails
    deliver(s, bus, take(bus, status="FAILED"))  # the run fails
    s.handle_batch([child0])  # the fast copy: the run ended, the child never starts
    never = take(bus, status=NOT_STARTED)
    deliver(s, bus, never)
    assert head(log).running == {} and [c.status for c in children(log)] == ["FAILED"]
    log.stale_head = running
    deliver(s, bus, [child0])  # the slow copy, on its read from before the failure
    assert [c.status for c in children(log)] == ["ABORTED", "FAILED"]  # child 0 did not run
    drain(s, bus)
    assert_exact(log)
    assert head(log).done["ABORTED"] == 1 and head(log).done["SUCCEEDED"] == 0
    assert s.calls[repr(1)] == 0  # type: ignore[attr-defined]


def test_a_child_start_read_before_its_run_failed_does_not_run_the_child(
    log: RacingLog,
) -> None:
    """Child 0's start read the run's head while it ran (its batch's one read); the run
    failed (its Stop found no child 0) before the start created child 0. Created after
    the failure, the child must not run its first state (its Lambda is not called): it
    ends ABORTED and is counted so. Before, it ran and succeeded behind the run's back."""
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    bus.send(start_message([1, "bad"], max_concurrency=2))
    deliver(s, bus, bus.receive_batch(10))
    kids = bus.receive_batch(10)
    [child0] = [m for m in kids if m.body.get("position") == 0]
    running = log.get(KEY)  # the head as child 0's start read it
    deliver(s, bus, [m for m in kids if m is not child0])  # child 1 fails
    deliver(s, bus, take(bus, status="FAILED"))  # the run fails and stops child 0
    deliver(s, bus, [m for m in bus.receive_batch(100) if m.body.get("type") == "Stop"])
    assert head(log).status == "FAILED" and [c.status for c in children(log)] == ["FAILED"]
    log.stale_head = running
    deliver(s, bus, [child0])  # created only now, on its read from before the failure
    drain(s, bus)
    assert s.calls[repr(1)] == 0  # type: ignore[attr-defined]
    assert [c.status for c in children(log)] == ["ABORTED", "FAILED"]
    assert_exact(log)
    assert head(log).done["ABORTED"] == 1 and head(log).done["FAILED"] == 1


def test_a_child_that_ends_while_its_run_fails_is_counted_once(log: RacingLog) -> None:
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    late, _ = fail_with_one_report_in_flight(s, bus)
    stops = [m for m in bus.receive_batch(100) if m.body.get("type") == "Stop"]
    assert len(stops) == 1
    deliver(s, bus, stops)  # the stop reaches a child that has ended: nothing changes
    deliver(s, bus, [late])
    deliver(s, bus, [late])  # redelivered
    drain(s, bus)
    assert_exact(log)
    assert head(log).done["SUCCEEDED"] == 1


def test_two_reports_racing_for_the_head_are_both_counted_at_once(log: RacingLog) -> None:
    """A report's commit loses the race to another report's: it is applied again at once,
    in the same delivery, not after the queue's visibility timeout."""
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    bus.send(start_message([1, 2, 3], max_concurrency=3))
    deliver(s, bus, bus.receive_batch(10))
    deliver(s, bus, bus.receive_batch(10))  # three children end; three reports queued
    first, second, third = take(bus, type="ChildFinished")
    other = Stepper(
        log=log.inner, bus=bus, definitions=s.definitions, clock=s.clock, invoker=s.invoker
    )
    log.before_commit.append(lambda: deliver(other, bus, [second]))
    deliver(s, bus, [first])
    assert log.conflicts == 1
    assert head(log).done["SUCCEEDED"] == 2  # both, the loser applied again at once
    deliver(s, bus, [third, first, second])
    done = finished(drain(s, bus))
    assert [d["status"] for d in done] == ["SUCCEEDED"]
    assert_exact(log)
    assert head(log).done["SUCCEEDED"] == 3
