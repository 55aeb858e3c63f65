"""EXPRESS batches: their size, their time bound, re-arms split by size, and a run's end once.

The real batch runner (``stepflow.runtime.express``) unless a test puts a stand-in in
its place; the in-memory log and bus; everything that must happen once is counted.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from stepflow.runtime import InMemoryBus, InMemoryLog, Message, Stepper, leases, map_express
from stepflow.runtime.express import ItemResult
from stepflow.runtime.map_express import REARM_BYTES, batch_size
from stepflow.runtime.map_run_state import RunHead
from stepflow.runtime.outcome import TaskOutcome
from stepflow.runtime.result_writing import MemoryResultSink
from stepflow.testing.handlers import run_handler

from tests.unit.map_run_support import (
    KEY,
    MACHINE,
    drain,
    finished,
    start_message,
    stepper,
    work,
)

WRITER = {"resource": "arn:aws:states:::s3:putObject", "parameters": {"Bucket": "b"}}


def test_batch_size_follows_the_window() -> None:
    assert batch_size(1000) == 100  # the most
    assert batch_size(100_000) == 100
    assert batch_size(500) == 50  # ten batches at once
    assert batch_size(100) == 25 and batch_size(1) == 25  # the least (fewer if fewer free)


def test_a_batch_starts_nothing_after_its_time_and_re_arms_the_rest() -> None:
    log, bus = InMemoryLog(), InMemoryBus(0.0)
    spent = [0.0]
    calls: Counter[Any] = Counter()

    def invoke(body: dict[str, Any]) -> TaskOutcome:
        calls[body["input"]] += 1
        spent[0] += 100.0  # each task takes 100 s
        return run_handler({"work": work}, _command(body))

    s = Stepper(
        log=log,
        bus=bus,
        definitions=lambda _: MACHINE,
        clock=lambda: bus.now + spent[0],
        invoker=invoke,
    )
    items = list(range(10))
    bus.send(start_message(items, execution_type="EXPRESS"))
    [done] = finished(drain(s, bus))
    assert done["output"] == [{"r": 2 * n} for n in items]
    assert calls == Counter({n: 1 for n in items})
    rearmed = [m for m in bus.sent if m.body.get("type") == "MapRunBatch" and m.body["attempt"]]
    # 600 s: six items of 100 s, and the seventh started at 600 s; three left unrun.
    assert [m.body["items"] for m in rearmed] == [[[7, None], [8, None], [9, None]]]


def _command(body: dict[str, Any]) -> Any:
    from stepflow.engine import RunTask

    return RunTask(body["task_id"], body["resource"], body["input"], body["state_name"])


@pytest.fixture
def parking(monkeypatch: pytest.MonkeyPatch) -> Counter[Any]:
    """A stand-in runner: ``{"park": n}`` parks once with n bytes of state, then succeeds."""
    ran: Counter[Any] = Counter()

    def run_batch(definition: Any, machine: str, inputs: Any, **kw: Any) -> list[ItemResult]:
        now = kw["clock"]()
        out = []
        for item in inputs:
            if isinstance(item, ItemResult):
                ran[item.index] += 1
                out.append(ItemResult(item.index, "SUCCEEDED", len(str(item.resume)), None, None))
                continue
            index, value = item
            if isinstance(value, dict):
                saved = {"s": "x" * value["park"]}
                out.append(ItemResult(index, "PENDING", resume=saved, start_date=now, wake_at=now))
            else:
                ran[index] += 1
                out.append(ItemResult(index, "SUCCEEDED", value, None, None, now, now))
        return out

    monkeypatch.setattr(map_express, "run_batch", run_batch)
    return ran


def test_parked_items_are_re_armed_in_messages_of_bounded_size(parking: Counter[Any]) -> None:
    log, bus = InMemoryLog(), InMemoryBus(0.0)
    s = stepper(log, bus)
    third = REARM_BYTES // 3
    items: list[Any] = [0, {"park": third}, {"park": third}, 3, {"park": third}, {"park": 10}]
    items += [{"park": REARM_BYTES * 2}, 7]  # one item over the bound goes alone
    bus.send(start_message(items, execution_type="EXPRESS"))
    [done] = finished(drain(s, bus))
    assert done["status"] == "SUCCEEDED", (done.get("error"), str(done.get("cause"))[:500])
    assert parking == Counter({n: 1 for n in range(8)})  # each item ran to its end once
    rearmed = [m for m in bus.sent if m.body.get("type") == "MapRunBatch" and m.body["attempt"]]
    # About a third of the bound each: two fit, the third starts a message; 6 goes alone.
    assert [[p for p, _ in m.body["items"]] for m in rearmed] == [[1, 2], [4, 5], [6]]
    assert len({m.id for m in rearmed}) == 3 and len({m.execution_arn for m in rearmed}) == 3


def test_the_end_is_computed_once_and_a_busy_end_commits_nothing() -> None:
    log, bus = ReadCountingLog(), InMemoryBus(0.0)
    sink = CountingSink({})
    s = stepper(log, bus, result_sink=sink)
    # Another delivery is computing this run's end (its lease is live).
    other = leases.claim(log, KEY, "finish#0", "other", 0.0, 10_000.0)
    assert other.status == "acquired" and other.lease is not None
    items = list(range(30))
    bus.send(start_message(items, execution_type="EXPRESS", writer=WRITER))
    assert finished(drain(s, bus)) == []  # every item done, but the end is not ours
    assert RunHead.from_json(log.get(KEY).state).status == "RUNNING"
    assert sink.writes == 0 and log.many == 0  # nothing read back, nothing written
    # The other delivery died: its lease is given back and its message (a report) comes
    # back; every report comes back here, the others as duplicates.
    log.put_lease(leases.release(other.lease, 0.0))
    for report in [m for m in bus.sent if m.body.get("type") == "MapRunBatchDone"]:
        bus.send(report)
    [done] = finished(drain(s, bus))
    assert done["status"] == "SUCCEEDED" and sink.writes == 1
    # A duplicate of the last delivery after the end: nothing is read or written again.
    reads = log.many
    bus.send(Message(KEY, f"{KEY}#again2", "event", {"type": "MapRunFill"}))
    drain(s, bus)
    assert sink.writes == 1 and log.many == reads


def test_a_retried_end_reuses_what_the_writer_wrote() -> None:
    from stepflow.runtime.map_results import run_output

    log, bus = InMemoryLog(), InMemoryBus(0.0)
    sink = CountingSink({})
    s = stepper(log, bus, result_sink=sink)
    bus.send(start_message([1, 2, 3], execution_type="EXPRESS", writer=WRITER))
    [done] = finished(drain(s, bus))
    head = RunHead.from_json(log.get(KEY).state)
    head.status = "RUNNING"  # as a commit that lost a race would find it again
    again = run_output(s.map_runs(), head)
    assert again == done["output"] and sink.writes == 1
    assert head.status == "SUCCEEDED" and head.results_written == 3


def test_an_end_that_raised_lets_the_next_delivery_compute_it() -> None:
    from stepflow.runtime.map_results import run_output

    log, bus = InMemoryLog(), InMemoryBus(0.0)
    sink = CountingSink({}, fail=1)
    s = stepper(log, bus, result_sink=sink)
    bus.send(start_message([1, 2], execution_type="EXPRESS", writer=WRITER))
    head = None
    for _ in range(50):  # run until the end is attempted (and fails once)
        batch = bus.receive_batch(10)
        if not batch:
            break
        s.handle_batch(batch)
        for message in batch:
            bus.ack(message)
        if sink.failed:
            head = RunHead.from_json(log.get(KEY).state)
            break
    assert head is not None and head.status == "RUNNING"
    output = run_output(s.map_runs(), head)  # not "busy": the failed attempt gave it back
    assert sink.writes == 1 and output["ResultWriterDetails"]


class CountingSink(MemoryResultSink):
    """A result sink that counts its writes and can fail as an outage would."""

    def __init__(self, objects: dict[tuple[str, str], bytes], fail: int = 0) -> None:
        super().__init__(objects)
        self.writes = 0
        self.fail = fail
        self.failed = 0

    def write(self, spec: Any, map_run_id: str, results: Any) -> dict[str, Any]:
        if self.fail:
            self.fail -= 1
            self.failed += 1
            raise ConnectionError("S3 is unreachable")
        self.writes += 1
        return super().write(spec, map_run_id, results)


class ReadCountingLog(InMemoryLog):
    """The in-memory log, counting its batch reads."""

    def __init__(self) -> None:
        super().__init__()
        self.many = 0

    def get_many(self, execution_arns: Any) -> Any:
        self.many += 1
        return super().get_many(execution_arns)


def test_a_duplicate_of_a_running_batch_is_dropped() -> None:
    log, bus = InMemoryLog(), InMemoryBus(0.0)
    s = stepper(log, bus)
    bus.send(start_message(list(range(5)), execution_type="EXPRESS"))
    first = bus.receive_batch(1)
    s.handle_batch(first)  # the run starts: one batch message queued
    bus.ack(first[0])
    [batch] = [m for m in bus.receive_batch(10) if m.body.get("type") == "MapRunBatch"]
    other = leases.claim(log, KEY, batch.id, "other", 0.0, 900.0)  # a runner runs it now
    assert other.lease is not None
    assert s.handle_batch([batch]) == []  # no failure: the duplicate is dropped
    bus.ack(batch)
    assert s.calls == Counter()  # type: ignore[attr-defined]
    assert not any(m.body.get("type") == "MapRunBatchDone" for m in bus.sent)
    # That runner died: its delivery comes back once the lease ran out, and runs once.
    bus.now = 1_000.0
    bus.send(batch)
    [done] = finished(drain(s, bus))
    assert done["output"] == [{"r": 2 * n} for n in range(5)]
    assert s.calls == Counter({repr(n): 1 for n in range(5)})  # type: ignore[attr-defined]


class FailingWrites(InMemoryLog):
    """The in-memory log whose first batch write fails (an outage), counting creates."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = 1
        self.creates: Counter[str] = Counter()

    def put_many(self, records: Any) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("DynamoDB is unreachable")
        super().put_many(records)

    def create(self, record: Any, events: Any) -> None:
        self.creates[record.execution_arn.rsplit("#", 1)[-1].split("/")[0]] += 1
        super().create(record, events)


def test_a_batch_that_failed_gives_its_lease_back_and_runs_again_with_conditional_writes() -> None:
    log, bus = FailingWrites(), InMemoryBus(0.0)
    s = stepper(log, bus)
    bus.send(start_message(list(range(4)), execution_type="EXPRESS"))
    [done] = finished(drain(s, bus))
    assert done["status"] == "SUCCEEDED", (done.get("error"), str(done.get("cause"))[:500])
    assert done["output"] == [{"r": 2 * n} for n in range(4)]
    assert log.creates["xr"] == 4  # the second run: one conditional create per result
    batch_lease = next(
        lease for (arn, task), lease in log._leases.items() if "#xb/" in task and arn == KEY
    )
    assert batch_lease.version == 4  # claimed, released, claimed again, finished


class LosingReports(InMemoryBus):
    """The in-memory bus whose first batch report is not accepted (an SQS outage)."""

    def __init__(self) -> None:
        super().__init__(0.0)
        self.lose = 1

    def send(self, message: Message, delay_seconds: int = 0) -> None:
        if self.lose and message.body.get("type") == "MapRunBatchDone":
            self.lose -= 1
            raise ConnectionError("SQS is unreachable")
        super().send(message, delay_seconds)


def test_a_batch_run_again_cannot_change_a_result_already_written() -> None:
    log, bus = InMemoryLog(), LosingReports()
    runs: Counter[Any] = Counter()

    def invoke(body: dict[str, Any]) -> TaskOutcome:
        runs[body["input"]] += 1
        return TaskOutcome.succeeded({"n": body["input"], "run": runs[body["input"]]})

    s = Stepper(log=log, bus=bus, definitions=lambda _: MACHINE, clock=lambda: bus.now,
                invoker=invoke)  # fmt: skip
    bus.send(start_message(list(range(3)), execution_type="EXPRESS"))
    [done] = finished(drain(s, bus))
    assert runs == Counter({0: 2, 1: 2, 2: 2})  # its report was lost: the batch ran again
    # The second run's results were not written over the first's (conditional puts).
    assert done["output"] == [{"r": {"n": n, "run": 1}} for n in range(3)]


def test_a_batch_near_the_end_of_its_lease_writes_conditionally() -> None:
    log, bus = FailingWrites(), InMemoryBus(0.0)
    log.fail = 0
    spent = [0.0]

    def invoke(body: dict[str, Any]) -> TaskOutcome:
        spent[0] += 850.0  # the lease (900 s) has less than WRITE_MARGIN left afterwards
        return TaskOutcome.succeeded(body["input"] * 2)

    s = Stepper(log=log, bus=bus, definitions=lambda _: MACHINE,
                clock=lambda: bus.now + spent[0], invoker=invoke)  # fmt: skip
    bus.send(start_message([21], execution_type="EXPRESS"))
    [done] = finished(drain(s, bus))
    assert done["output"] == [{"r": 42}]
    assert log.creates["xr"] == 1  # a conditional create, not an unconditional batch write


def test_a_stale_batch_delivered_again_after_a_redrive_does_not_count_its_old_report() -> None:
    """Hostile review: a batch message delivered again after its run was redriven.

    Its lease holds its report (``done``), which a later delivery re-sends. After a
    redrive that runs the batch's failed item again, that old report said FAILED for a
    position the redrive's batch is running: the run counted it and failed again,
    though the item then succeeded (and its result record says so).
    """
    log, bus = InMemoryLog(), InMemoryBus(0.0)
    broken = [True]

    def invoke(body: dict[str, Any]) -> TaskOutcome:
        if body["input"] == "bad" and broken[0]:
            return TaskOutcome.failed("Boom", "bad item")
        return TaskOutcome.succeeded(body["input"])

    s = Stepper(log=log, bus=bus, definitions=lambda _: MACHINE, clock=lambda: bus.now,
                invoker=invoke)  # fmt: skip
    items = ["bad", 1, 2]
    bus.send(start_message(items, execution_type="EXPRESS"))
    batches: list[Message] = []
    original = bus.send

    def keep(message: Message, delay_seconds: int = 0) -> None:
        if message.body.get("type") == "MapRunBatch":
            batches.append(message)
        original(message, delay_seconds)

    bus.send = keep  # type: ignore[method-assign]
    [failed] = finished(drain(s, bus))
    assert failed["status"] == "FAILED"
    [stale] = batches
    # WHEN the parent is redriven (the item is fixed), and before the redrive's batch
    # runs, the first batch's message is delivered again
    broken[0] = False
    bus.now = 10.0
    bus.send(start_message(items, seq=7, parent_redrive=1, execution_type="EXPRESS"))
    restart = bus.receive_batch(1)
    s.handle_batch(restart)
    bus.ack(restart[0])
    assert len(batches) == 2  # the redrive's batch is queued
    s.handle_batch([stale])
    to_parent = drain(s, bus)
    # THEN the redriven run succeeded: the old report did not count
    ends = [m.body for m in to_parent if m.body.get("type") == "MapRunFinished"]
    assert [e["status"] for e in ends] == ["SUCCEEDED"], ends
    stored = log.get(KEY)
    assert stored is not None
    assert RunHead.from_json(stored.state).done["SUCCEEDED"] == 3


def test_a_dropped_duplicate_of_a_batch_whose_runner_died_still_runs_once() -> None:
    """Hostile review: a duplicate of a running batch was dropped (deleted from the queue).

    SQS deletes a message through its latest receipt: the duplicate's. If the runner of
    the first copy then dies, no copy comes back, and the batch's items never ran: the
    run never ended. The duplicate is now sent again for when that runner's lease ends.
    """
    log, bus = InMemoryLog(), InMemoryBus(0.0)
    s = stepper(log, bus)
    bus.send(start_message(list(range(5)), execution_type="EXPRESS"))
    first = bus.receive_batch(1)
    s.handle_batch(first)
    bus.ack(first[0])
    [batch] = [m for m in bus.receive_batch(10) if m.body.get("type") == "MapRunBatch"]
    other = leases.claim(log, KEY, batch.id, "other", 0.0, 900.0)  # a runner runs it now
    assert other.lease is not None
    assert s.handle_batch([batch]) == []
    bus.ack(batch)  # the duplicate's receipt deletes the message: the runner then dies
    assert s.calls == Counter()  # type: ignore[attr-defined]
    bus.now = 1_000.0  # its lease ran out
    [done] = finished(drain(s, bus))
    assert done["output"] == [{"r": 2 * n} for n in range(5)]
    assert s.calls == Counter({repr(n): 1 for n in range(5)})  # type: ignore[attr-defined]
