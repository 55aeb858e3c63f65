"""Review findings on the "held until" mark (in_place.py), on the memory log.

- A mark is never pushed later over the tasks a commit carries: a runner that keeps
  holding its own new tasks on a head that carries a dead holder's would otherwise
  keep those from being re-sent for as long as it keeps finding work.
- A retried StartExecution (same name and input) does not re-send a held outbox.
"""

from __future__ import annotations

from typing import Any

from stepflow.runtime import InMemoryLog, Message
from stepflow.runtime.held_mark import CLOCK_SKEW, held_until
from stepflow.runtime.repair import repair_message
from stepflow.runtime.task_groups import group_members

from tests.unit.test_runner_held_mark import CHAIN, LEFT, NOW, SM, World, _task, _until, beside_b

LOOP = beside_b(  # beside a then b: a loop (Wait, then c and e in place, again)
    ("W", {"Type": "Wait", "Seconds": 60, "Next": "c"}),
    ("c", _task("c", Next="e")),
    ("e", _task("c", Next="Again")),  # c again
    (
        "Again",
        {
            "Type": "Choice",
            "Choices": [{"Variable": "$.stop", "IsPresent": True, "Next": "Done"}],
            "Default": "W",
        },
    ),
    ("Done", {"Type": "Succeed"}),
)


def test_a_mark_is_never_pushed_later_over_a_dead_holders_tasks() -> None:
    log = InMemoryLog()
    w = World(log, LOOP)
    (wait,) = [m for m in w.started if m.not_before == NOW + 60]  # a's timeout: +100 s
    (a,) = w.first
    w.die_holding(a)
    head = log.get(w.arn)
    assert head is not None and held_until(head) == NOW + LEFT
    # WHEN, 500 s later, the loop's timer fires and another runner runs c, then e in place
    w.now[0] = NOW + 500
    w.bus.sent.clear()
    w.transitions.handle_batch([wait])
    for c in list(w.tasks.sent):
        w.other.handle_batch([c], None, lambda: LEFT)
    w.tasks.sent.clear()
    # THEN the head still carries b, under the dead holder's mark, not the new runner's
    head = log.get(w.arn)
    assert head is not None and w.calls["c"] == 2  # c, then e in place
    until = held_until(head)
    assert until is not None and until <= NOW + LEFT, "the mark was pushed later"
    # and the repair message after that mark re-sends b, which then runs once
    w.now[0] = NOW + LEFT + CLOCK_SKEW + 1
    assert w.transitions.handle_batch([repair_message(w.arn)]) == []
    runs_b = [m for m in w.tasks.sent if "b" in str(m.body.get("resource", m.body))]
    assert runs_b, "b was not re-sent after its holder's mark"
    for message in runs_b:
        w.other.handle_batch([message], None, lambda: LEFT)
    assert w.calls["a"] == 1 and w.calls["b"] == 1


def test_a_retried_start_leaves_a_held_outbox_alone() -> None:
    log = InMemoryLog()
    w = World(log, CHAIN, block="b")
    (first,) = w.first
    worker = w.hold(first)
    _until(lambda: w.calls["b"] == 1, "b never started")
    timers, outbox = w.timers(), log.get(w.arn)
    assert outbox is not None
    # WHEN the client retries StartExecution (same name, same input) while b runs in place
    w.now[0] += 5
    w.transitions.start_execution(state_machine_arn=SM, name="x", input={}, seed=1)
    # THEN nothing is re-sent and the held outbox, the tasks' durable copy, stays
    head = log.get(w.arn)
    assert w.tasks.sent == [], "the held group was sent again"
    assert w.timers() == timers, "the held outbox's timers were sent again"
    assert head is not None and head.outbox == outbox.outbox
    w.release.set()
    worker.join(10)
    assert w.calls == {"a": 1, "b": 1, "c": 1}
    assert w.succeeded()


def _cancel_left_pending() -> tuple[World, InMemoryLog, Message]:
    """LOOP: a's runner dies holding b (marked until NOW + LEFT); the Wait's timer sends c;
    then a ``.sync`` job's cancel (a task message of a closed task) is left in the held
    head's outbox, as by a writer that died between its commit and its send."""
    log = InMemoryLog()
    w = World(log, LOOP)
    (wait,) = [m for m in w.started if m.not_before == NOW + 60]
    (a,) = w.first
    w.die_holding(a)
    w.now[0] = NOW + 60
    w.tasks.sent.clear()
    assert w.transitions.handle_batch([wait]) == []
    head = log.get(w.arn)
    assert head is not None and held_until(head) == NOW + LEFT
    cancel = Message(
        w.arn,
        f"{w.arn}#{head.seq}#9",
        "task",
        {"op": "cancel", "task_id": a.body["task_id"], "handle": {"JobId": "j-1"}},
    )
    log.keep_outbox(head, (*head.outbox, cancel))
    return w, log, cancel


def _cancels(w: World) -> int:
    return sum(1 for m in w.tasks.sent if m.body.get("op") == "cancel")


def test_a_job_cancel_left_in_a_held_outbox_outlives_another_commit() -> None:
    """review: carry_held kept a task message only if its task was open, so a commit on
    the held head dropped a ``.sync`` job's cancel unsent: the job kept running."""
    w, log, cancel = _cancel_left_pending()
    (c,) = [m for m in w.tasks.sent if "c" in str(m.body.get("resource", m.body))]
    w.tasks.sent.clear()
    assert w.other.handle_batch([c], None, lambda: LEFT) == []  # c's commit, held head
    head = log.get(w.arn)
    assert head is not None and cancel.id in {m.id for m in head.outbox}, "the cancel was lost"
    w.now[0] = NOW + LEFT + CLOCK_SKEW + 1  # after the mark: the repair job's message
    assert w.transitions.handle_batch([repair_message(w.arn)]) == []
    assert _cancels(w) == 1


def test_a_commit_that_ends_a_held_execution_sends_what_was_left_pending() -> None:
    """review: StopExecution on a held head dropped the pending outbox unsent (a job's
    cancel, a child's stop): now the ending commit sends it."""
    w, log, _cancel = _cancel_left_pending()
    w.tasks.sent.clear()
    w.now[0] = NOW + 70
    w.transitions.stop_execution(w.arn)
    head = log.get(w.arn)
    assert head is not None and head.status == "ABORTED"
    assert _cancels(w) == 1, "the cancel was dropped unsent"


WAIT_BESIDE = {  # a, then a Parallel: b beside (a Wait of 10 s, then c)
    "StartAt": "a",
    "States": {
        "a": _task("a", Next="P"),
        "P": {
            "Type": "Parallel",
            "End": True,
            "Branches": [
                {"StartAt": "b", "States": {"b": _task("b", End=True)}},
                {
                    "StartAt": "W",
                    "States": {
                        "W": {"Type": "Wait", "Seconds": 10, "Next": "c"},
                        "c": _task("c", End=True),
                    },
                },
            ],
        },
    },
}


def test_a_holders_failed_send_ends_its_mark() -> None:
    """review 10: the holder's own send of its commit's timer failed and its mark stayed,
    so nothing re-sent the Wait's timer before the mark: a Wait of 10 s took 10 minutes."""
    log = InMemoryLog()
    w = World(log, WAIT_BESIDE)
    (a,) = w.first
    send = w.bus.send
    failed: list[Message] = []

    def once(message: Message, delay_seconds: int = 0) -> None:
        if not failed and message.not_before == NOW + 10:
            failed.append(message)
            raise ConnectionError("SQS refused it once")
        send(message, delay_seconds)

    w.bus.send = once  # type: ignore[method-assign]
    w.runner.handle_batch([a], None, lambda: LEFT)
    head = log.get(w.arn)
    assert failed and head is not None and held_until(head) is None, "the mark stayed"
    w.now[0] = NOW + 30  # a's redelivery (or any delivery) re-sends it at once
    w.other.handle_batch([a], None, lambda: LEFT)
    w.transitions.handle_batch([repair_message(w.arn)])
    assert [m for m in w.bus.sent if m.not_before == NOW + 10], "the Wait's timer waits"
    assert w.calls["a"] == 1 and w.calls["b"] == 1


def test_a_failed_send_ends_the_mark_a_racing_commit_kept() -> None:
    """review 10: a commit's send failed while another commit on the held head carried its
    task under the same mark: the unmark at the failed commit's seq wrote nothing, and
    the task, held by nobody, waited for the mark. Now the later head is unmarked too."""

    def waits(name: str, seconds: int, task: str) -> dict[str, Any]:
        waited = {"Type": "Wait", "Seconds": seconds, "Next": task}
        return {"StartAt": name, "States": {name: waited, task: _task("c", End=True)}}

    chain = {"StartAt": "a", "States": {"a": _task("a", Next="b"), "b": _task("b", End=True)}}
    branches = [chain, waits("W", 60, "c"), waits("V", 61, "d")]
    three = {
        "StartAt": "P",
        "States": {"P": {"Type": "Parallel", "End": True, "Branches": branches}},
    }
    log = InMemoryLog()
    w = World(log, three, block="b")
    (a,) = w.first
    (first,) = [m for m in w.started if m.not_before == NOW + 60]
    (second,) = [m for m in w.started if m.not_before == NOW + 61]
    worker = w.hold(a)
    try:
        _until(lambda: w.calls["b"] == 1, "b never started")
        w.now[0] = NOW + 62
        send = w.tasks.send
        raced: list[int] = []

        def racing(message: Message, delay_seconds: int = 0) -> None:
            if not raced:  # W's commit sends c: meanwhile V's commits, then SQS fails
                raced.append(1)
                w.other.handle_batch([second], None, lambda: LEFT)
                raise ConnectionError("SQS throttled")
            send(message, delay_seconds)

        w.tasks.send = racing  # type: ignore[method-assign]
        w.transitions.handle_batch([first])
        w.tasks.send = send  # type: ignore[method-assign]
        head = log.get(w.arn)
        assert head is not None and held_until(head) is None, "the raced mark stayed"
        w.transitions.handle_batch([first])  # the redelivery re-sends c at once
        sent = [x for m in w.tasks.sent for x in (group_members(m) or [m])]
        assert [m for m in sent if m.id.endswith(f"#{head.seq - 1}#0")], "c waits"
    finally:
        w.release.set()
        worker.join(10)
