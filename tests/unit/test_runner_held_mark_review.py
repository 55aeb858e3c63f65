"""Review findings on the "held until" mark (in_place.py), on the memory log.

- A mark is never pushed later over the tasks a commit carries: a runner that keeps
  holding its own new tasks on a head that carries a dead holder's would otherwise
  keep those from being re-sent for as long as it keeps finding work.
- A retried StartExecution (same name and input) does not re-send a held outbox.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from stepflow.runtime import InMemoryLog, Message
from stepflow.runtime.in_place import CLOCK_SKEW, held_until
from stepflow.runtime.repair import repair_message

from tests.unit import test_runner_held_mark as held_mark
from tests.unit.test_runner_batch import RecordingBus
from tests.unit.test_runner_group import Crash
from tests.unit.test_runner_held_mark import CHAIN, LEFT, NOW, SM, World, _task, _until

LOOP = {  # a Parallel: (a then b) beside a loop (Wait, then c and e in place, again)
    "StartAt": "P",
    "States": {
        "P": {
            "Type": "Parallel",
            "End": True,
            "Branches": [
                {
                    "StartAt": "a",
                    "States": {
                        "a": _task("a", Next="b"),
                        "b": _task("b", End=True),
                    },
                },
                {
                    "StartAt": "W",
                    "States": {
                        "W": {"Type": "Wait", "Seconds": 60, "Next": "c"},
                        "c": _task("c", Next="e"),
                        "e": _task("c", Next="Again"),  # c again
                        "Again": {
                            "Type": "Choice",
                            "Choices": [{"Variable": "$.stop", "IsPresent": True, "Next": "Done"}],
                            "Default": "W",
                        },
                        "Done": {"Type": "Succeed"},
                    },
                },
            ],
        }
    },
}


def test_a_mark_is_never_pushed_later_over_a_dead_holders_tasks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    everything: list[Message] = []  # World clears its buses after the start: the Wait's timer

    class Keeping(RecordingBus):
        def send(self, message: Message, delay_seconds: int = 0) -> None:
            everything.append(message)
            super().send(message, delay_seconds)

    monkeypatch.setattr(held_mark, "RecordingBus", Keeping)
    log = InMemoryLog()
    w = World(log, LOOP)
    (wait,) = [m for m in everything if m.not_before == NOW + 60]  # a's timeout: +100 s
    (a,) = w.first
    put = log.put_lease

    def dies(lease: Any) -> None:  # a's runner dies at the claim of b, held in place
        if lease.task_id != a.body["task_id"]:
            raise Crash("the holder dies")
        put(lease)

    log.put_lease = dies  # type: ignore[method-assign]
    with contextlib.suppress(Crash):
        w.runner.handle_batch([a], None, lambda: LEFT)
    log.put_lease = put  # type: ignore[method-assign]
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
