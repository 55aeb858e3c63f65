"""Ending a "held until" mark after a failed send (review 11), on the memory log.

``OutboxSender._end_mark`` unmarks the head as stored, never the caller's copy of it (a
stepper's flush leaves out the tasks it ran inline, whose only copy the outbox is), and
a commit that keeps its carried messages leaves the head's mark as it is now (another
writer's failed send may have ended it: written back, it would hold that writer's
messages again).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from stepflow.runtime import InMemoryLog, Message
from stepflow.runtime.held_mark import HELD_UNTIL, held_until, mark_value
from stepflow.runtime.ports import ExecutionRecord
from stepflow.runtime.repair import OutboxSender

ARN = "arn:aws:states:us-east-1:123456789012:execution:sm:x"
NOW = 1_000_000.0


class Bus:
    """A bus that refuses every message (``ok`` False) or records it."""

    def __init__(self, ok: bool) -> None:
        self.ok, self.sent = ok, list[str]()

    def send(self, message: Message, delay_seconds: int = 0) -> None:
        if not self.ok:
            raise ConnectionError("SQS is down")
        self.sent.append(message.id)


def _sender(log: InMemoryLog, ok: bool) -> OutboxSender:
    return OutboxSender(log, Bus(ok), lambda: NOW, False, None, Bus(ok), 0)  # type: ignore[arg-type]


def _at(seq: int, outbox: tuple[Message, ...], until: float) -> ExecutionRecord:
    """The record commit ``seq`` wrote, marked ``until``."""
    return replace(BASE, seq=seq, outbox=outbox, attributes={HELD_UNTIL: mark_value(seq, until)})


def _log(head: ExecutionRecord) -> InMemoryLog:
    log = InMemoryLog()
    log.create(replace(head, seq=0, outbox=(), attributes={}), [])
    log._heads[ARN] = head
    return log


HELD = Message(ARN, f"{ARN}#3#0", "task", {"task_id": "g"})  # the holder's
TIMER = Message(ARN, f"{ARN}#3#1", "event", {"type": "TimerFired"}, NOW + 10)  # unsent
OWN = Message(ARN, f"{ARN}#4#0", "event", {"type": "TimerFired"})  # the next commit's
BASE = ExecutionRecord(ARN, "sm", "x", {}, "RUNNING", 0, {}, ())


def test_a_commit_that_keeps_what_it_carries_does_not_bring_an_ended_mark_back() -> None:
    # GIVEN commit 3 (its timer unsent) and commit 4, which carried it under the mark
    r3 = replace(
        BASE, seq=3, outbox=(HELD, TIMER), attributes={HELD_UNTIL: mark_value(3, NOW + 600)}
    )
    r4 = replace(
        BASE, seq=4, outbox=(OWN, HELD, TIMER), attributes={HELD_UNTIL: mark_value(4, NOW + 600)}
    )
    log = _log(r4)
    # WHEN commit 3's failed send ends the mark, and then commit 4's sends finish
    _sender(log, ok=False)._end_mark(r3)
    head = log.get(ARN)
    assert head is not None and held_until(head) is None
    _sender(log, ok=True).flush(r4, skip=frozenset({HELD.id, TIMER.id}))
    # THEN the outbox is what 4 carried, and the mark stays ended: the timer is re-sent now
    head = log.get(ARN)
    assert head is not None and head.outbox == (HELD, TIMER)
    assert held_until(head) is None, "the ended mark came back"


def test_ending_a_mark_never_writes_back_a_partial_outbox() -> None:
    # GIVEN a head whose outbox holds a task a stepper ran inline (t1, its only copy) and
    # a mark that has passed (the memory log keeps it as written)
    t1 = Message(ARN, f"{ARN}#3#0", "task", {"task_id": "t1"})
    t2 = Message(ARN, f"{ARN}#3#1", "task", {"task_id": "t2"})
    head = replace(
        BASE, seq=3, outbox=(t1, t2, TIMER), attributes={HELD_UNTIL: mark_value(3, NOW - 100)}
    )
    log = _log(head)
    # WHEN the stepper re-sends the rest (t1 left out, as handled) and the send fails
    with pytest.raises(ConnectionError):
        _sender(log, ok=False).flush(replace(head, outbox=(t2, TIMER)), clear=False)
    # THEN t1 is still in the outbox
    stored = log.get(ARN)
    assert stored is not None and t1 in stored.outbox, "the inline task's only copy was lost"
