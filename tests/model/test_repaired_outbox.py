"""Regression: a repaired outbox is not cleared while a task taken over from it is uncommitted.

Found by the chaos machine (tests/model/chaos.py): StartExecution's send is lost, so
the outbox (an inline task and a timer) stays pending; the repair message's stepper
takes the task over and runs it, and, before committing its result, re-sent the rest
of the outbox and cleared all of it. A crash before that commit then lost the task:
the execution stayed RUNNING forever with nothing queued.
"""

from __future__ import annotations

from stepflow.runtime import ExecutionRecord

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


def test_a_commit_keeps_an_inline_task_another_stepper_is_running() -> None:
    """Found by bench/chaos.py: a commit replaced the outbox and forgot an inline task
    that another stepper was running; when that stepper died before committing the
    task's result, nothing ran it again."""
    m = ChaosMachine()
    m.start("fanout", 1)  # the outbox (the Parallel's Lambda task and Wait timer) is pending
    arn = m.arns["fanout-0"]
    _, repair = m.bus.entries()[0]
    loads = 0
    real_get = m.log.get

    def get(execution_arn: str) -> ExecutionRecord | None:
        # The stepper that took the task over ran it and loads the head to commit the
        # result: meanwhile the rival fires the Wait's timer (its re-send of the task,
        # which it finds leased, is lost), then the first stepper dies before its commit.
        nonlocal loads
        record = real_get(execution_arn)
        loads += 1
        if loads == 2:
            m.bus.now += 10
            timer = next(msg for _, msg in m.bus.entries() if msg.kind == "event")
            m.bus.lose_in = 1
            m.rival.handle_batch([timer])
            m.bus.ack(timer)
            m.bus.lose_in = None
            rival = real_get(arn)
            assert rival is not None and rival.seq == 2
            assert [msg.id for msg in rival.outbox] == [f"{arn}#1#0"], "the running task dropped"
            m.log.crash_commit = "before"
        return record

    m.log.get = get  # type: ignore[method-assign]
    m._deliver(repair, m.api)
    m.log.get = real_get  # type: ignore[method-assign]
    m.teardown()  # fair delivery: it ends with the expected output
