"""What a map run's child costs in writes, and how often the run's head is written.

- the run head's report writes are at least ``MIN_WRITE_INTERVAL`` apart, on a clock
  that runs (reports arriving sooner are bundled into one delayed message), and a
  hostile delivery (duplicates, lost acks) still counts each child once;
- an ended child's last outbox (its report to the run) is not cleared by a write of
  its own, and a late delivery to the ended child re-sends it harmlessly;
- small documents are compressed when that is shorter, a child's head no longer
  repeats its map run's ARN.
"""

from __future__ import annotations

import itertools
import random
import string
import zlib
from collections import Counter
from typing import Any

import orjson
import pytest
from stepflow.aws.log_items import Draft, ItemPacker
from stepflow.runtime import InMemoryBus, InMemoryLog, Message
from stepflow.runtime.map_coalesce import MIN_WRITE_INTERVAL, bundle
from stepflow.runtime.map_inline import child_attributes
from stepflow.runtime.map_run_state import RunHead, child_execution_arn
from stepflow.runtime.ports import ExecutionRecord
from stepflow.runtime.registry import listing_key

import tests.unit.map_run_support as support
from tests.unit.map_run_support import KEY, MAP_RUN_ARN, drain, finished, start_message


class TickingBus(InMemoryBus):
    """The in-memory bus whose clock moves ``tick`` seconds each time it is read."""

    def __init__(self, now: float, tick: float = 0.001) -> None:
        self.tick = tick
        super().__init__(now)

    @property
    def now(self) -> float:
        """Virtual time, ``tick`` later at each reading (time passes)."""
        self._now += self.tick
        return self._now

    @now.setter
    def now(self, value: float) -> None:
        self._now = value


class HeadWrites(support.MeteredLog):
    """Counts writes per key, and records when each commit of the run's head was made."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.head_commits: list[float] = []
        """When each commit of the run's head was made (its ``written_at``)."""
        self.clears: Counter[str] = Counter()

    def commit(
        self, record: ExecutionRecord, expected_seq: int, events: Any, *, fence: Any = None
    ) -> None:
        super().commit(record, expected_seq, events, fence=fence)
        if record.execution_arn == KEY:
            self.head_commits.append(RunHead.from_json(record.state).written_at)

    def clear_outbox(self, execution_arn: str, seq: int) -> None:
        self.clears[execution_arn] += 1
        super().clear_outbox(execution_arn, seq)


def run(items: int, rng: random.Random | None = None) -> tuple[HeadWrites, InMemoryBus, Any]:
    log, bus = HeadWrites(InMemoryLog()), TickingBus(0.0)
    s = support.stepper(log, bus)
    bus.send(start_message(list(range(items)), max_concurrency=25))
    to_parent = drain(s, bus, rng)
    return log, bus, to_parent


def test_report_writes_of_the_run_head_are_at_least_the_interval_apart() -> None:
    # GIVEN 200 children, 25 at a time, reporting as they end, on a clock that runs
    log, _, to_parent = run(200)
    # THEN the run finished once with every result
    [done] = finished(to_parent)
    assert done["status"] == "SUCCEEDED"
    assert done["output"] == [{"r": 2 * n} for n in range(200)]
    # AND no two commits of its head came closer than the interval (after the start's,
    # every one was for reports: 25 children at a time need no MapRunFill)
    times = log.head_commits
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps and min(gaps) >= MIN_WRITE_INTERVAL - 1e-9, (min(gaps), len(times))
    # AND the 200 reports cost far fewer head writes than reports
    assert log.writes[KEY] < 100, log.writes[KEY]


def test_bundled_reports_count_each_child_once_under_duplicates_and_lost_acks() -> None:
    # GIVEN deliveries shuffled, duplicated and sometimes not acknowledged
    log, _, to_parent = run(120, random.Random(7))
    # THEN each child counted once, and the run reported its end once (by message id)
    [done] = finished(to_parent)
    assert done["output"] == [{"r": 2 * n} for n in range(120)]
    stored = log.inner.get(KEY)
    assert stored is not None
    head = RunHead.from_json(stored.state)
    assert head.done["SUCCEEDED"] == 120 and head.done_items["SUCCEEDED"] == 120
    assert not head.running


def test_an_ended_childs_report_is_not_cleared_by_a_write_of_its_own() -> None:
    log, bus, _ = run(30)
    child = child_execution_arn(MAP_RUN_ARN, 3)
    # THEN no child's outbox was cleared by a write of its own (the run's head was)
    assert not [arn for arn in log.clears if arn != KEY], log.clears
    record = log.inner.get(child)
    assert record is not None and record.status == "SUCCEEDED"
    [report] = record.outbox
    assert report.execution_arn == KEY and report.body["type"] == "ChildFinished"
    # WHEN a late delivery reaches the ended child (a duplicate of its Stop, say)
    s = support.stepper(log, bus)
    s.handle_batch([Message(child, f"{KEY}#stop/3", "event", {"type": "Stop"})])
    # THEN its report goes out again, and the run does not count the child twice
    resent = bus.receive_batch(10)
    assert [m.id for m in resent] == [report.id]
    s.handle_batch(resent)
    stored = log.inner.get(KEY)
    assert stored is not None
    head = RunHead.from_json(stored.state)
    assert head.done["SUCCEEDED"] == 30 and head.done_items["SUCCEEDED"] == 30


def test_a_small_compressible_document_is_stored_compressed_an_incompressible_one_plain() -> None:
    packer = ItemPacker(
        compress_above=100,
        item_budget=350 * 1024,
        transaction_budget=3_000_000,
        offload=None,
        fetch=lambda key: b"",
    )
    arn = "arn:aws:states:us-east-1:123456789012:execution:x"
    repetitive = orjson.dumps({"arn": arn * 10})
    rng = random.Random(1)
    noise = orjson.dumps("".join(rng.choice(string.ascii_letters) for _ in range(110)))
    assert len(zlib.compress(noise, 6)) >= len(noise)  # the premise
    [item] = packer.seal([Draft({}, {"state": repetitive, "outbox": noise})], "test")
    # THEN the repetitive one is stored compressed, the other plain (zlib made it longer)
    assert "state_z" in item and len(item["state_z"]["B"]) < len(repetitive)
    assert "outbox" in item and "outbox_z" not in item
    assert packer.read(item, "state", None) == {"arn": arn * 10}
    assert packer.read(item, "outbox", None) == orjson.loads(noise)


def test_a_childs_head_names_its_map_run_once_and_is_listed_under_it() -> None:
    attributes = child_attributes({"map_run_arn": MAP_RUN_ARN})
    assert attributes == {"map_run_arn": MAP_RUN_ARN}
    child = child_execution_arn(MAP_RUN_ARN, 0)
    assert listing_key(child, support.SM, attributes) == MAP_RUN_ARN
    assert listing_key(child, support.SM, {"listed_under": "", "map_run_arn": "x"}) is None


def test_a_child_is_stored_with_its_first_step_in_one_write() -> None:
    # GIVEN 30 children on the in-memory log, counting each write per key
    log, bus = HeadWrites(InMemoryLog()), InMemoryBus(0.0)
    s = support.stepper(log, bus)
    bus.send(start_message(list(range(30))))
    [done] = finished(drain(s, bus))
    assert done["output"] == [{"r": 2 * n} for n in range(30)]
    # THEN each child cost two writes of its own: created with its first step, and the
    # commit of its result (no bare create, no clear of its report)
    for n in range(30):
        assert log.writes[child_execution_arn(MAP_RUN_ARN, n)] == 2, n
    # AND each item's Lambda ran once
    assert set(s.calls.values()) == {1}  # type: ignore[attr-defined]


def test_a_crash_after_the_childs_first_write_is_repaired_and_it_runs_once() -> None:
    log, bus = HeadWrites(InMemoryLog()), InMemoryBus(0.0)
    s = support.stepper(log, bus)
    invoke, crashed = s.invoker, list[bool]()

    def crash_once(body: dict[str, Any]) -> Any:
        if body["input"] == 5 and not crashed:  # the stepper dies before running item 5
            crashed.append(True)
            raise ConnectionError("stepper lost")
        return invoke(body)

    s.invoker = crash_once
    bus.send(start_message(list(range(12))))
    [done] = finished(drain(s, bus, random.Random(3)))
    # THEN the redelivered child message found the child stored, ran its task, once more
    assert crashed and done["output"] == [{"r": 2 * n} for n in range(12)]
    assert s.calls[repr(5)] == 1  # type: ignore[attr-defined]
    record = log.inner.get(child_execution_arn(MAP_RUN_ARN, 5))
    assert record is not None and record.status == "SUCCEEDED" and record.seq == 2


def test_fills_are_coalesced_too_and_the_window_still_fills() -> None:
    # GIVEN 450 children, 300 at a time: the window fills by 100 per write (MapRunFill)
    log, bus = HeadWrites(InMemoryLog()), TickingBus(0.0, tick=0.00001)
    s = support.stepper(log, bus)
    bus.send(start_message(list(range(450)), max_concurrency=300))
    [done] = finished(drain(s, bus))
    assert done["output"] == [{"r": 2 * n} for n in range(450)]
    # THEN after the start's commit, no two commits of the head came closer than the interval
    gaps = [b - a for a, b in itertools.pairwise(log.head_commits)]
    assert min(gaps) >= MIN_WRITE_INTERVAL - 1e-9, min(gaps)


class SizedBus(TickingBus):
    """A bus that refuses a message to the run over SQS's 256 KiB, as SQS does."""

    LIMIT = 262_144

    def __init__(self, now: float) -> None:
        super().__init__(now, tick=0.0001)
        self.refused: list[int] = []

    def send(self, message: Message, delay_seconds: int = 0) -> None:
        size = len(orjson.dumps(self.signer.sign(message)))
        if message.execution_arn == KEY and size > self.LIMIT:
            self.refused.append(size)
            raise RuntimeError(f"SQS refuses a message of {size} bytes")
        super().send(message, delay_seconds)


def test_children_with_large_outputs_report_in_messages_sqs_accepts() -> None:
    """Hostile review: deferred reports were bundled with each child's whole output.

    The run never reads a report's output (a child's result is read from its record),
    but a bundle carried it: three children of 120 KB outputs made one 360 KB message,
    which SQS refuses (the reports came back until the dead-letter queue).
    """
    log, bus = HeadWrites(InMemoryLog()), SizedBus(0.0)
    s = support.stepper(log, bus)
    items = [f"{n}" + "x" * 60_000 for n in range(3)]
    bus.send(start_message(items, max_concurrency=25))
    to_parent = drain(s, bus)
    assert bus.refused == []
    assert [m for m in bus.sent if m.body.get("type") == "MapRunReports"]  # deferred
    [_] = finished(to_parent)
    stored = log.inner.get(KEY)
    assert stored is not None
    head = RunHead.from_json(stored.state)
    assert head.done["SUCCEEDED"] == 3 and not head.running


def test_a_bundle_carries_no_output_and_is_not_made_past_its_bound() -> None:
    report = {"type": "ChildFinished", "child_id": "1", "status": "FAILED", "output": "o" * 999}
    made = bundle(KEY, [("m1", report)])
    assert made is not None
    [carried] = made.body["reports"]
    assert "output" not in carried and carried["status"] == "FAILED"
    # long causes: ten of 20 KB would be over the bound, so the reports are applied at once
    long = [(f"m{i}", {**report, "cause": "c" * 20_000}) for i in range(10)]
    assert bundle(KEY, long) is None
    assert bundle(KEY, long[:3]) is not None


class RacingLog(support.MeteredLog):
    """Runs ``race()`` once, just before (or just after) the first create of ``arn``."""

    def __init__(self, inner: Any, arn: str, *, after: bool) -> None:
        super().__init__(inner)
        self.arn, self.after = arn, after
        self.race: Any = None

    def create(self, record: ExecutionRecord, events: Any) -> None:
        race, hit = self.race, record.execution_arn == self.arn and self.race is not None
        if hit:
            self.race = None
        if hit and not self.after:
            race()
        super().create(record, events)
        if hit and self.after:
            race()


@pytest.mark.parametrize("after", [False, True], ids=["before-create", "after-create"])
def test_two_steppers_starting_one_child_run_its_task_once(after: bool) -> None:
    """A duplicate child message handled by a second stepper while the first starts it.

    Before the first's create (the first falls back to applying Start on the stored
    child) or between its create and its inline task (the second takes the task over
    from the outbox): either way the child is created once and its Lambda runs once.
    """
    child = child_execution_arn(MAP_RUN_ARN, 4)
    log, bus = RacingLog(InMemoryLog(), child, after=after), InMemoryBus(0.0)
    a, b = support.stepper(log, bus), support.stepper(log, bus)
    b.invoker, b.calls = a.invoker, a.calls  # type: ignore[attr-defined]
    bus.send(start_message(list(range(8))))
    a.handle_batch(bus.receive_batch(1))  # the run starts its children
    messages = bus.receive_batch(100)
    for message in messages:
        bus.ack(message)
    [dup] = [m for m in messages if m.execution_arn == child]
    log.race = lambda: b.handle_batch([dup])
    a.handle_batch(messages)
    assert log.race is None  # the second stepper ran in the middle
    record = log.inner.get(child)  # created with its first step, then its one result
    assert record is not None and record.status == "SUCCEEDED" and record.seq == 2
    [done] = finished(drain(a, bus))
    assert done["output"] == [{"r": 2 * n} for n in range(8)]
    assert a.calls[repr(4)] == 1  # type: ignore[attr-defined]
    stored = log.inner.get(KEY)
    assert stored is not None
    assert RunHead.from_json(stored.state).done["SUCCEEDED"] == 8


def test_a_child_started_after_its_run_was_cancelled_mid_batch_never_runs() -> None:
    """Hostile review: a batch's child starts read their run's head once (``run_heads``).

    With inline tasks, the first child's Lambda runs before the next child is started;
    a cancel committed meanwhile (the user's StopExecution) must stop the rest of the
    batch from starting, as when each child read the head just before its create. The
    cancel's Stop to a child not yet created is lost, so a child created after it
    would run its Lambda after the stop.
    """
    calls = cancel_during_the_first_child(HeadWrites(InMemoryLog()))
    assert calls[repr(0)] == 1
    assert [n for n in range(1, 6) if calls[repr(n)]] == []  # none ran after the stop


def cancel_during_the_first_child(log: Any) -> Counter[str]:
    """Six children started in one batch; the run is cancelled during the first's Lambda.

    Returns the Lambda calls per item (``repr``); ``log`` ends with the run ABORTED.
    """
    bus = InMemoryBus(0.0)
    s = support.stepper(log, bus)
    other = support.stepper(log, bus)
    invoke = s.invoker
    bus.send(start_message(list(range(6)), max_concurrency=6))
    s.handle_batch(bus.receive_batch(1))  # the run starts six children
    messages = bus.receive_batch(100)
    for message in messages:
        bus.ack(message)
    children_first = sorted(
        (m for m in messages if m.kind == "child"), key=lambda m: int(m.body["position"])
    )
    assert len(children_first) == 6

    def stop_during_the_first(body: dict[str, Any]) -> Any:
        if body["input"] == 0:  # another stepper applies the parent's cancel meanwhile
            other.handle_batch([support.cancel_message()])
        return invoke(body)

    s.invoker = stop_during_the_first
    s.handle_batch(children_first)
    drain(s, bus)
    stored = log.get(KEY)
    assert stored is not None and RunHead.from_json(stored.state).status == "ABORTED"
    calls: Counter[str] = s.calls  # type: ignore[attr-defined]
    return calls
