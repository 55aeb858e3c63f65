"""A map run's counts when a child is created late, on a read of its run from before it
failed (the review of the map-run merge, issue 18).

The child's start read the run while it ran; by the time it creates the child the run
has failed, or failed and been redriven. Only a run that ended stops that child: a
redriven run settles a child of its attempt before by the child's own record. A child
whose first decision ends it (Pass, Choice, Fail only) keeps its report. Each test runs
on the in-memory log and on the DynamoDB log (moto).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from stepflow.asl import parse
from stepflow.runtime import InMemoryBus, Message, Stepper
from stepflow.runtime.map_express import NOT_STARTED

from tests.integration.map_run_counts_support import (
    RacingLog,
    assert_exact,
    deliver,
    head,
    log,
    redrive_message,
    take,
    working,
)
from tests.unit import map_run_support as support
from tests.unit.map_run_support import KEY, children, drain, finished, start_message, stepper

__all__ = ["log"]  # the fixture, on the in-memory log and on DynamoDB (moto)


def _fail_with_child0_unstarted(s: Stepper, bus: InMemoryBus, log: RacingLog) -> Any:
    """Items [1, "bad"]: child 1 fails, the run fails (its Stop finds no child 0) while
    child 0's start is still in flight. Returns that start and the run's head as it read it.
    """
    bus.send(start_message([1, "bad"], max_concurrency=2))
    deliver(s, bus, bus.receive_batch(10))
    kids = bus.receive_batch(10)
    [child0] = [m for m in kids if m.body.get("position") == 0]
    running = log.get(KEY)  # the head as child 0's start read it
    deliver(s, bus, [m for m in kids if m is not child0])  # child 1 fails
    deliver(s, bus, take(bus, status="FAILED"))  # the run fails
    deliver(s, bus, [m for m in bus.receive_batch(100) if m.body.get("type") == "Stop"])
    assert head(log).status == "FAILED"
    return child0, running


def test_a_start_from_before_the_redrive_created_after_its_refill_does_not_fail_the_run(
    log: RacingLog,
) -> None:
    """A duplicate of child 0's start answered "never started"; the run is redriven and
    its refill starts child 0 again. The slow copy of the first start, on its read from
    before the failure, creates child 0 only now. It must not be aborted and counted
    against the redriven run (which then failed though every item succeeds): child 0
    runs once, and the redriven run succeeds with both items counted once."""
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    child0, running = _fail_with_child0_unstarted(s, bus, log)
    deliver(s, bus, [child0])  # the fast duplicate copy: "never started"
    deliver(s, bus, take(bus, status=NOT_STARTED))
    with working():  # "bad" now succeeds
        bus.send(redrive_message([1, "bad"]))
        deliver(s, bus, take(bus, type="StartMapRun"))
        refill = [m for m in bus.receive_batch(100) if m.kind == "child"]
        log.stale_head = running
        deliver(s, bus, [child0])  # the slow copy creates child 0 only now
        deliver(s, bus, refill)
        done = finished(drain(s, bus))
    assert [d["status"] for d in done if d["parent_redrive"] == 1] == ["SUCCEEDED"], done
    assert [c.status for c in children(log)] == ["SUCCEEDED", "SUCCEEDED"]
    assert_exact(log)
    assert head(log).done["SUCCEEDED"] == 2 and head(log).done["ABORTED"] == 0
    assert s.calls[repr(1)] == 1  # type: ignore[attr-defined]
    assert s.calls[repr("bad")] == 2  # type: ignore[attr-defined]


# The item processor decides at once: "bad" fails, anything else succeeds (no Task).
_INSTANT = copy.deepcopy(support.DEFINITION)
_INSTANT["States"]["Each"]["ItemProcessor"]["StartAt"] = "Check"
_INSTANT["States"]["Each"]["ItemProcessor"]["States"] = {
    "Check": {
        "Type": "Choice",
        "Choices": [{"Variable": "$", "StringEquals": "bad", "Next": "Bad"}],
        "Default": "Ok",
    },
    "Bad": {"Type": "Fail", "Error": "Bad"},
    "Ok": {"Type": "Pass", "End": True},
}
_FIXED = copy.deepcopy(_INSTANT)  # the redrive's: "bad" now succeeds too
_FIXED["States"]["Each"]["ItemProcessor"]["States"]["Bad"] = {"Type": "Pass", "End": True}


def _instant_stepper(log: RacingLog, bus: InMemoryBus, definition: dict[str, Any]) -> Stepper:
    machine = parse(definition)
    return Stepper(
        log=log,
        bus=bus,
        definitions=lambda _: machine,
        clock=lambda: bus.now,
        invoker=lambda body: None,
    )


def _reports(bus: InMemoryBus, child_id: str) -> list[Message]:
    return [m for m in take(bus, type="ChildFinished") if m.body.get("child_id") == child_id]


def test_a_child_ended_by_its_first_decision_after_its_run_failed_keeps_its_report(
    log: RacingLog,
) -> None:
    """Child 0 is created after its run failed, and its first decision ends it (a Choice
    to a Pass). Its report is in its first commit's outbox: the abort must not replace
    that outbox with an empty Stop's (the run then counted child 0 running for ever)."""
    bus = InMemoryBus(0.0)
    s = _instant_stepper(log, bus, _INSTANT)
    child0, running = _fail_with_child0_unstarted(s, bus, log)
    log.stale_head = running
    deliver(s, bus, [child0])  # created only now, on its read from before the failure
    reports = _reports(bus, "0")
    assert [m.body["status"] for m in reports] == ["SUCCEEDED"]  # reported once
    drain(s, bus)
    assert [c.status for c in children(log)] == ["SUCCEEDED", "FAILED"]
    assert_exact(log)
    assert head(log).done["SUCCEEDED"] == 1 and head(log).done["FAILED"] == 1


def test_a_redrive_after_a_child_ended_by_its_first_decision_does_not_hang(
    log: RacingLog,
) -> None:
    """As above, then the run is redriven ("bad" now succeeds): the redriven run must
    end (it waited for ever on child 0's lost report) and count each child once."""
    bus = InMemoryBus(0.0)
    s = _instant_stepper(log, bus, _INSTANT)
    child0, running = _fail_with_child0_unstarted(s, bus, log)
    log.stale_head = running
    deliver(s, bus, [child0])
    drain(s, bus)
    s = _instant_stepper(log, bus, _FIXED)
    bus.send(redrive_message([1, "bad"]))
    done = finished(drain(s, bus))
    assert [d["status"] for d in done if d["parent_redrive"] == 1] == ["SUCCEEDED"], done
    assert [c.status for c in children(log)] == ["SUCCEEDED", "SUCCEEDED"]
    assert_exact(log)
    assert head(log).done["SUCCEEDED"] == 2


def test_two_copies_of_a_start_read_before_the_run_failed_never_run_the_child(
    log: RacingLog,
) -> None:
    """Two copies of child 0's start in two concurrent batches, both on a read of the run
    from before it failed: copy A creates child 0; copy B, finding it, applied ``Start``
    to it and sent its first commit's outbox before A's check of the run aborted it: the
    child's Lambda was called in a failed run. Now B checks the run too: child 0 never
    runs, is aborted once and counted ABORTED once."""
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    child0, running = _fail_with_child0_unstarted(s, bus, log)
    create = log.create

    def racing_create(record: Any, events: Any) -> None:
        create(record, events)
        if record.execution_arn == child0.execution_arn:  # copy B, between A's create and check
            del log.create
            log.stale_head = running
            assert s.handle_batch([child0]) == []

    log.create = racing_create  # type: ignore[method-assign]
    log.stale_head = running
    deliver(s, bus, [child0])  # copy A
    reports = {(m.id, m.body["status"]) for m in _reports(bus, "0")}
    assert [status for _, status in reports] == ["ABORTED"]  # one report (sent again: same id)
    drain(s, bus)
    assert s.calls[repr(1)] == 0  # type: ignore[attr-defined]
    assert [c.status for c in children(log)] == ["ABORTED", "FAILED"]
    assert_exact(log)
    assert head(log).done["ABORTED"] == 1 and head(log).done["FAILED"] == 1


class _Crash(Exception):
    """The stepper process dies here."""


def _die_after_create(log: RacingLog, arn: str) -> None:
    """The next create of ``arn`` is stored, then its stepper dies (before the run check)."""
    create = log.create

    def dying_create(record: Any, events: Any) -> None:
        create(record, events)
        if record.execution_arn == arn:
            del log.create
            raise _Crash

    log.create = dying_create  # type: ignore[method-assign]


def test_a_stepper_dead_between_a_childs_create_and_the_run_check_never_runs_the_child(
    log: RacingLog,
) -> None:
    """Child 0 is created on a read of the run from before it failed, and the stepper
    dies before its check of the run. The create's repair message came first and sent
    the child's first outbox whatever the run's state: its Lambda was called in a failed
    run. Now that delivery checks the run as the creating stepper would have: child 0
    never runs, is aborted once and counted ABORTED once (the start's redelivery, after
    it, changes nothing)."""
    bus = InMemoryBus(0.0)
    s = stepper(log, bus, repair_delay=60)  # as deployed: a repair message before each commit
    child0, running = _fail_with_child0_unstarted(s, bus, log)
    _die_after_create(log, child0.execution_arn)
    log.stale_head = running
    [(failed, error)] = s.handle_batch([child0])  # the batch is lost with its process
    assert failed is child0 and isinstance(error, _Crash)
    assert [c.status for c in children(log)] == ["RUNNING", "FAILED"]
    bus.now += 3600  # the repair message is due before the start's redelivery
    repairs = [
        m
        for m in bus.receive_batch(1000)
        if m.kind == "repair" and m.execution_arn == child0.execution_arn
    ]
    assert repairs
    deliver(s, bus, repairs[:1])
    assert s.calls[repr(1)] == 0  # type: ignore[attr-defined]
    drain(s, bus)  # the start's redelivery, other repair messages, the report
    assert s.calls[repr(1)] == 0  # type: ignore[attr-defined]
    assert [c.status for c in children(log)] == ["ABORTED", "FAILED"]
    assert_exact(log)
    assert head(log).done["ABORTED"] == 1 and head(log).done["FAILED"] == 1


def test_a_stepper_dead_between_a_childs_create_and_the_run_check_of_a_running_run(
    log: RacingLog,
) -> None:
    """The same death while the run still runs: the repair message sends the child's
    first outbox (one read of the run more), the child runs once and the run succeeds
    with both items counted once."""
    bus = InMemoryBus(0.0)
    s = stepper(log, bus, repair_delay=60)
    bus.send(start_message([1, 2], max_concurrency=2))
    deliver(s, bus, bus.receive_batch(10))
    kids = [m for m in bus.receive_batch(10) if m.kind == "child"]
    [child0] = [m for m in kids if m.body.get("position") == 0]
    _die_after_create(log, child0.execution_arn)
    [(failed, _)] = s.handle_batch([child0])
    assert failed is child0
    bus.now += 3600
    [repair, *_] = [
        m
        for m in bus.receive_batch(1000)
        if m.kind == "repair" and m.execution_arn == child0.execution_arn
    ]
    reads = _run_reads(log)
    deliver(s, bus, [repair])
    assert reads == [1]  # the run checked once before the child's first outbox went out
    done = finished(drain(s, bus))
    assert [d["status"] for d in done] == ["SUCCEEDED"], done
    assert s.calls[repr(1)] == 1 and s.calls[repr(2)] == 1  # type: ignore[attr-defined]
    assert [c.status for c in children(log)] == ["SUCCEEDED", "SUCCEEDED"]
    assert_exact(log)
    assert head(log).done["SUCCEEDED"] == 2


def test_a_child_whose_first_task_ran_inline_while_its_run_failed_keeps_its_result(
    log: RacingLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review 12: child 0's first state is a Task with a timeout (its timer stays in the
    first outbox while the task runs inline). The run fails while the task's Lambda
    runs; the creating stepper had checked the run before. Committing the task's result
    must not check the run again: the child was aborted and its Lambda's success lost
    (on the tasks-queue path it succeeds). Child 0 runs once and keeps its result."""
    definition = copy.deepcopy(support.DEFINITION)
    definition["States"]["Each"]["ItemProcessor"]["States"]["Work"]["TimeoutSeconds"] = 300
    monkeypatch.setattr(support, "MACHINE", parse(definition))
    bus = InMemoryBus(0.0)
    s, other = stepper(log, bus), stepper(log, bus)
    bus.send(start_message([1, "bad"], max_concurrency=2))
    deliver(s, bus, bus.receive_batch(10))
    kids = bus.receive_batch(10)
    [child0] = [m for m in kids if m.body.get("position") == 0]
    deliver(s, bus, [m for m in kids if m is not child0])  # child 1 fails
    failed = take(bus, status="FAILED")
    real = support.work
    reads = _run_reads(log)

    def work(n: Any) -> Any:
        if n == 1:  # while child 0's Lambda runs, another stepper fails the run
            deliver(other, bus, failed)
            assert head(log).status == "FAILED"
            reads[0] = 0
        return real(n)

    monkeypatch.setattr(support, "work", work)
    deliver(s, bus, [child0])
    assert reads == [0]  # no read of the run after the Lambda: its creator checked it
    monkeypatch.setattr(support, "work", real)
    drain(s, bus)
    [zero] = [c for c in children(log) if c.execution_arn.endswith("-0")]
    assert zero.status == "SUCCEEDED"
    kinds = [e["type"] for e in log.history(zero.execution_arn).events]
    assert kinds.count("LambdaFunctionSucceeded") == 1 and "ExecutionAborted" not in kinds
    assert s.calls[repr(1)] == 1  # type: ignore[attr-defined]
    assert_exact(log)


def _run_reads(log: RacingLog) -> list[int]:
    """A one-item list counting the reads of the run's head from now on."""
    count = [0]
    get = log.get

    def counted(execution_arn: str) -> Any:
        if execution_arn == KEY:
            count[0] += 1
        return get(execution_arn)

    log.get = counted  # type: ignore[method-assign]
    return count
