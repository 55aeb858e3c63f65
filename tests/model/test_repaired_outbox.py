"""Regression: a repaired outbox is not cleared while a task taken over from it is uncommitted.

Found by the chaos machine (tests/model/chaos.py): StartExecution's send is lost, so
the outbox (an inline task and a timer) stays pending; the repair message's stepper
takes the task over and runs it, and, before committing its result, re-sent the rest
of the outbox and cleared all of it. A crash before that commit then lost the task:
the execution stayed RUNNING forever with nothing queued.
"""

from __future__ import annotations

from tests.model.chaos import ChaosMachine


def test_a_crash_before_committing_a_taken_over_task_loses_nothing() -> None:
    m = ChaosMachine()
    m.start("fanout", 1)  # the repair message goes out, the first send of the outbox is lost
    arn = m.arns["fanout-0"]
    record = m.log.get(arn)
    assert record is not None and len(record.outbox) == 2
    _, repair = m.bus.entries()[0]
    assert repair.kind == "repair"
    m.log.crash_commit = "before"  # the stepper dies before committing the task's result
    m._deliver(repair, m.api)
    record = m.log.get(arn)
    assert record is not None and record.seq == 1
    assert [msg.id for msg in record.outbox] == [f"{arn}#1#0", f"{arn}#1#1"], "outbox cleared"
    m.teardown()  # fair delivery: it ends with the expected output
    assert m.calls["double"] == 1 + 3, "the inline task ran again though its result was recorded"
