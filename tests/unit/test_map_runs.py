"""The map run coordinator through the real Stepper on the in-memory log.

Each test drives a run as the parent's outbox would (a ``StartMapRun`` message) and
watches what the parent hears (``MapRunFinished``) and what the log holds.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections import Counter
from typing import Any

import pytest
from stepflow.runtime import InMemoryBus, InMemoryLog, Message, Stepper
from stepflow.runtime.map_io import ItemReaderError, ReaderSpec, WriterSpec
from stepflow.runtime.map_run_state import PAGE_SIZE, RunHead, describe
from stepflow.runtime.ports import ConflictError, ExecutionRecord

from tests.unit import map_run_support as support
from tests.unit.map_run_support import (
    KEY,
    MAP_RUN_ARN,
    MeteredLog,
    cancel_message,
    children,
    drain,
    finished,
    start_message,
    stepper,
)


def run(items: list[Any], **fields: Any) -> tuple[Stepper, Any, list[Message]]:
    log, bus = MeteredLog(InMemoryLog()), InMemoryBus(0.0)
    s = stepper(log, bus)
    bus.send(start_message(items, **fields))
    return s, log, drain(s, bus)


def head(log: Any) -> RunHead:
    record = log.get(KEY)
    assert record is not None
    return RunHead.from_json(record.state)


def test_a_run_of_five_items_reports_its_results_in_order_once() -> None:
    s, log, to_parent = run([1, 2, 3, 4, 5])
    [done] = finished(to_parent)
    assert done["status"] == "SUCCEEDED"
    assert done["output"] == [{"r": 2}, {"r": 4}, {"r": 6}, {"r": 8}, {"r": 10}]
    kids = list(children(log))
    assert len(kids) == 5 and all(k.status == "SUCCEEDED" for k in kids)
    assert kids[0].execution_arn == (
        "arn:aws:states:us-east-1:123456789012:execution:Batch/Each:0b6c2d4e-run-0"
    )
    assert kids[0].attributes["map_run_arn"] == MAP_RUN_ARN
    assert all(n == 1 for n in s.calls.values())  # type: ignore[attr-defined]
    described = describe(head(log))
    assert described["status"] == "SUCCEEDED"
    assert described["itemCounts"]["succeeded"] == described["itemCounts"]["total"] == 5
    assert described["executionCounts"]["running"] == 0


def test_a_run_of_1000_items_costs_o_1_writes_per_item_and_no_result_in_any_head() -> None:
    items = list(range(1000))
    _, log, to_parent = run(items)
    [done] = finished(to_parent)
    assert done["output"] == [{"r": 2 * n} for n in items]
    per_key = log.writes
    total = sum(per_key.values())
    assert total / len(items) < 6  # each child ~4 writes, pages and the run head amortized
    assert per_key[KEY] <= 2 * (len(items) // 10) + 10  # one commit per delivered batch
    pages = [k for k in per_key if "#page/" in k]
    assert len(pages) == len(items) // PAGE_SIZE and all(per_key[k] == 1 for k in pages)
    # The run head is bounded: counters and window, never items or results.
    assert len(repr(log.get(KEY).state)) < 2000
    assert max(per_key.values()) == per_key[KEY]


def test_duplicate_and_reordered_deliveries_are_applied_once() -> None:
    for seed in range(4):
        rng = random.Random(seed)
        log, bus = MeteredLog(InMemoryLog()), InMemoryBus(0.0)
        s = stepper(log, bus)
        bus.send(start_message(list(range(60)), max_concurrency=7))
        bus.send(start_message(list(range(60)), max_concurrency=7))  # a redelivered start
        done = finished(drain(s, bus, rng))
        assert len(done) == 1 and done[0]["output"] == [{"r": 2 * n} for n in range(60)]
        final = head(log)
        assert final.done["SUCCEEDED"] == 60 and final.children == 60
        assert sum(final.done.values()) == 60


def test_a_crash_between_the_commit_and_sending_is_repaired_by_the_next_delivery() -> None:
    class CrashAfterCommit(InMemoryLog):
        crashes = 3

        def commit(
            self, record: ExecutionRecord, expected_seq: int, events: Any, **kw: Any
        ) -> None:
            super().commit(record, expected_seq, events, **kw)
            if record.execution_arn == KEY and self.crashes > 0:
                self.crashes -= 1
                raise ConnectionError("crashed after the commit")

    log, bus = CrashAfterCommit(), InMemoryBus(0.0)
    s = stepper(log, bus)
    bus.send(start_message(list(range(25)), max_concurrency=4))
    [done] = finished(drain(s, bus))
    assert log.crashes == 0
    assert done["output"] == [{"r": 2 * n} for n in range(25)]


class ThreadBus:
    """A thread-safe bus: messages in a queue, delays ignored; its clock runs.

    (A clock that never moves would defer the run's reports forever: see
    :mod:`stepflow.runtime.map_coalesce`.)
    """

    def __init__(self) -> None:
        self.queue: queue.Queue[Message] = queue.Queue()

    @property
    def now(self) -> float:
        """Real time."""
        return time.monotonic()

    def send(self, message: Message, delay_seconds: int = 0) -> None:
        self.queue.put(message)


def test_concurrent_steppers_finish_the_run_once() -> None:
    log = InMemoryLog()
    bus = ThreadBus()
    steppers = [stepper(log, bus) for _ in range(3)]  # type: ignore[arg-type]
    to_parent: list[Message] = []
    lock = threading.Lock()

    def work(s: Stepper) -> None:
        while True:
            try:
                message = bus.queue.get(timeout=0.5)
            except queue.Empty:
                return
            if message.execution_arn == support.PARENT:
                with lock:
                    to_parent.append(message)
                continue
            for failed, _ in s.handle_batch([message]):
                bus.queue.put(failed)

    bus.send(start_message(list(range(120)), max_concurrency=10))
    threads = [threading.Thread(target=work, args=(s,)) for s in steppers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    [done] = finished(to_parent)
    assert done["output"] == [{"r": 2 * n} for n in range(120)]
    final = head(log)
    assert final.done["SUCCEEDED"] == 120 and not final.running


def test_max_concurrency_is_respected_and_reached() -> None:
    log, bus = MeteredLog(InMemoryLog()), InMemoryBus(0.0)
    s = stepper(log, bus)
    bus.send(start_message(list(range(40)), max_concurrency=3))
    peaks: list[int] = []
    [done] = finished(drain(s, bus, watch=peaks))
    assert done["status"] == "SUCCEEDED"
    assert max(peaks) == 3


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"tolerated_count": 2}, "SUCCEEDED"),
        ({"tolerated_count": 1}, "FAILED"),
        ({"tolerated_percentage": 20.0}, "SUCCEEDED"),
        ({"tolerated_percentage": 19.9}, "FAILED"),
        # Both given: exceeding either one fails the run, as an inline Map's tolerance does.
        ({"tolerated_count": 1, "tolerated_percentage": 20.0}, "FAILED"),
        ({"tolerated_count": 2, "tolerated_percentage": 19.9}, "FAILED"),
        ({"tolerated_count": 2, "tolerated_percentage": 20.0}, "SUCCEEDED"),
        ({}, "FAILED"),
    ],
)
def test_tolerated_failures_at_the_boundary(fields: dict[str, Any], status: str) -> None:
    items: list[Any] = [1, 2, "bad", 4, 5, 6, "bad", 8, 9, 10]
    _, _, to_parent = run(items, max_concurrency=1, **fields)
    [done] = finished(to_parent)
    assert done["status"] == status
    if status == "SUCCEEDED":
        assert done["output"][2] == {"Error": "ValueError", "Cause": "bad item"}
        assert done["output"][3] == {"r": 8}
    else:
        assert done["error"] == "States.ExceedToleratedFailureThreshold"


def test_cancel_stops_the_run_and_its_running_children_once() -> None:
    log, bus = MeteredLog(InMemoryLog()), InMemoryBus(0.0)
    s = stepper(log, bus)
    bus.send(start_message(list(range(50)), max_concurrency=5))
    batch = bus.receive_batch(10)
    s.handle_batch(batch)  # the run starts five children
    for m in batch:
        bus.ack(m)
    bus.send(cancel_message())
    bus.send(cancel_message())  # delivered twice
    to_parent = drain(s, bus)
    assert finished(to_parent) == []  # the parent asked: nothing is reported back
    final = head(log)
    assert final.status == "ABORTED"
    assert final.next == 5  # no child started after the cancel
    stops = {m.id for m in bus.sent if m.body.get("type") == "Stop"}
    assert len(stops) == 5
    assert Counter(k.status for k in children(log))["RUNNING"] == 0


def test_a_cancel_before_the_start_leaves_a_run_that_never_starts() -> None:
    log, bus = MeteredLog(InMemoryLog()), InMemoryBus(0.0)
    s = stepper(log, bus)
    bus.send(cancel_message())
    drain(s, bus)
    bus.send(start_message([1, 2]))
    assert finished(drain(s, bus)) == []
    assert head(log).status == "ABORTED" and list(children(log)) == []


def test_redrive_runs_only_the_unsuccessful_and_unstarted_items() -> None:
    log, bus = MeteredLog(InMemoryLog()), InMemoryBus(0.0)
    s = stepper(log, bus)
    items: list[Any] = [1, 2, "bad", 4, 5, 6, 7, 8]
    bus.send(start_message(items, max_concurrency=1))
    [failed] = finished(drain(s, bus))
    assert failed["status"] == "FAILED"
    first = head(log)
    assert first.done["SUCCEEDED"] == 2 and first.next < len(items)
    calls = s.calls  # type: ignore[attr-defined]
    assert calls["1"] == calls["2"] == 1 and calls["4"] == 0
    original = support.work
    try:
        support.work = lambda n: 0 if n == "bad" else original(n)  # type: ignore[assignment]
        bus.send(
            start_message(items, seq=7, parent_redrive=1, max_concurrency=1)
        )  # the parent's redrive
        succeeded = [d for d in finished(drain(s, bus)) if d["status"] == "SUCCEEDED"]
    finally:
        support.work = original
    assert len(succeeded) == 1
    assert calls["1"] == calls["2"] == 1  # succeeded items did not run again
    assert calls["'bad'"] >= 2 and all(calls[repr(n)] == 1 for n in (4, 5, 6, 7, 8))
    final = head(log)
    assert final.redrive_count == 1 and final.done["SUCCEEDED"] == len(items)
    assert describe(final)["redriveCount"] == 1 and "redriveDate" in describe(final)


class Source:
    def __init__(self, items: list[Any] | None = None) -> None:
        self.items, self.reads = items, 0

    def read(self, spec: ReaderSpec) -> Any:
        self.reads += 1
        if self.items is None:
            raise ItemReaderError("The specified key does not exist.")
        return iter(self.items)


class Sink:
    def __init__(self) -> None:
        self.written: list[dict[str, Any]] = []

    def write(self, spec: WriterSpec, map_run_id: str, results: Any) -> dict[str, Any]:
        for entry in results:  # streamed: one at a time
            self.written.append(entry)
        return {"Bucket": spec.parameters["Bucket"], "Key": f"out/{map_run_id}/manifest.json"}


def test_items_from_a_reader_and_results_to_a_writer() -> None:
    log, bus = MeteredLog(InMemoryLog()), InMemoryBus(0.0)
    s = stepper(log, bus)
    source, sink = Source([3, "bad", 5]), Sink()
    s.item_source, s.result_sink = source, sink  # type: ignore[attr-defined]
    reader = {"resource": "arn:aws:states:::s3:getObject", "parameters": {}, "reader_config": {}}
    writer = {"resource": "arn:aws:states:::s3:putObject", "parameters": {"Bucket": "b"}}
    bus.send(start_message(None, reader=reader, writer=writer, tolerated_count=1))
    [done] = finished(drain(s, bus))
    assert done["output"] == {
        "MapRunArn": MAP_RUN_ARN,
        "ResultWriterDetails": {"Bucket": "b", "Key": "out/0b6c2d4e-run/manifest.json"},
    }
    assert source.reads == 1
    assert [e["Status"] for e in sink.written] == ["SUCCEEDED", "FAILED", "SUCCEEDED"]
    assert sink.written[0]["Output"] == '{"r":6}' and sink.written[1]["Error"] == "ValueError"
    assert describe(head(log))["itemCounts"]["resultsWritten"] == 3


def test_a_reader_failure_fails_the_map_as_aws() -> None:
    log, bus = MeteredLog(InMemoryLog()), InMemoryBus(0.0)
    s = stepper(log, bus)
    s.item_source = Source(None)  # type: ignore[attr-defined]
    reader = {"resource": "arn:aws:states:::s3:getObject", "parameters": {}}
    bus.send(start_message(None, reader=reader))
    [done] = finished(drain(s, bus))
    assert (done["status"], done["error"]) == ("FAILED", "States.ItemReaderFailed")
    assert done["cause"] == "The specified key does not exist."


def test_no_item_source_is_a_clear_error() -> None:
    reader = {"resource": "arn:aws:states:::s3:getObject", "parameters": {}}
    _, _, to_parent = run(None, reader=reader)  # type: ignore[arg-type]
    [done] = finished(to_parent)
    assert done["error"] == "States.ItemReaderFailed" and "ItemReader" in done["cause"]


def test_an_empty_run_succeeds_with_an_empty_array() -> None:
    _, _, to_parent = run([])
    [done] = finished(to_parent)
    assert (done["status"], done["output"]) == ("SUCCEEDED", [])


def test_update_map_run_widens_the_window_of_a_running_run() -> None:
    log, bus = MeteredLog(InMemoryLog()), InMemoryBus(0.0)
    s = stepper(log, bus)
    bus.send(start_message(list(range(30)), max_concurrency=1))
    batch = bus.receive_batch(1)
    s.handle_batch(batch)
    bus.ack(batch[0])
    assert len(head(log).running) == 1
    s.map_runs().update(MAP_RUN_ARN, max_concurrency=6, tolerated_count=3)
    updated = head(log)
    assert (updated.max_concurrency, updated.tolerated_count) == (6, 3)
    assert len(updated.running) == 6
    peaks: list[int] = []
    [done] = finished(drain(s, bus, watch=peaks))
    assert done["status"] == "SUCCEEDED" and max(peaks) == 6


def test_conflicts_are_retried_on_the_latest_head() -> None:
    class Conflicting(InMemoryLog):
        left = 5

        def commit(
            self, record: ExecutionRecord, expected_seq: int, events: Any, **kw: Any
        ) -> None:
            if record.execution_arn == KEY and self.left > 0:
                self.left -= 1
                raise ConflictError(KEY, expected_seq)
            super().commit(record, expected_seq, events, **kw)

    log, bus = Conflicting(), InMemoryBus(0.0)
    s = stepper(log, bus)
    bus.send(start_message([1, 2, 3]))
    [done] = finished(drain(s, bus))
    assert done["output"] == [{"r": 2}, {"r": 4}, {"r": 6}]


def test_the_runs_end_names_the_parents_redrive_it_ran_for() -> None:
    """The parent ignores an end stamped with an earlier redrive count (see
    tests/unit/test_distributed_map.py::test_a_late_end_of_the_run_before_the_redrive_is_ignored).
    """
    log, bus = MeteredLog(InMemoryLog()), InMemoryBus(0.0)
    s = stepper(log, bus)
    items: list[Any] = [1, "bad", 3]
    bus.send(start_message(items))
    [failed] = finished(drain(s, bus))
    assert failed["status"] == "FAILED" and failed["parent_redrive"] == 0
    original = support.work
    try:
        support.work = lambda n: 0 if n == "bad" else original(n)  # type: ignore[assignment]
        redrive = start_message(items, seq=7)
        redrive = Message(
            redrive.execution_arn, redrive.id, "event", {**redrive.body, "parent_redrive": 1}
        )
        bus.send(redrive)
        [done] = [d for d in finished(drain(s, bus)) if d["status"] == "SUCCEEDED"]
    finally:
        support.work = original
    assert done["parent_redrive"] == 1
