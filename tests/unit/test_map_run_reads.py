"""Reads per child of a STANDARD map run: the run's head twice per batch, the child's never.

GIVEN a run of ten items whose ten child messages arrive in one batch, WHEN the
stepper handles the batch, THEN it reads the run's head twice (not once per child
message: once before the children are created, once after, as no child may run its
first state if the run ended in between) and no child's head (each is created with its
first decision).
"""

from __future__ import annotations

from collections import Counter

from stepflow.runtime import InMemoryBus, InMemoryLog
from stepflow.runtime.ports import ExecutionRecord

from tests.unit.map_run_support import KEY, drain, finished, start_message, stepper


class ReadCountingLog(InMemoryLog):
    def __init__(self) -> None:
        super().__init__()
        self.reads: Counter[str] = Counter()

    def get(self, execution_arn: str) -> ExecutionRecord | None:
        self.reads[execution_arn] += 1
        return super().get(execution_arn)


def test_a_batch_of_ten_child_starts_reads_the_run_twice_and_no_child() -> None:
    log, bus = ReadCountingLog(), InMemoryBus(0.0)
    s = stepper(log, bus, inline_tasks=False)
    bus.send(start_message(list(range(10)), max_concurrency=10))
    for message in bus.receive_batch(10):
        assert not s.handle_batch([message])
        bus.ack(message)
    starts = bus.receive_batch(10)
    assert [m.kind for m in starts] == ["child"] * 10
    log.reads.clear()
    assert s.handle_batch(starts) == []
    for message in starts:
        bus.ack(message)
    assert log.reads[KEY] == 2  # before the creates, and after them
    kids = [m.execution_arn for m in starts]
    # a new child is stored with its first decision (runtime/child_start.py): never read
    assert [log.reads[arn] for arn in kids] == [0] * 10
    [done] = finished(drain(s, bus))
    assert done["status"] == "SUCCEEDED" and done["output"] == [{"r": 2 * i} for i in range(10)]
