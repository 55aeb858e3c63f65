"""A commit on a held head keeps in its outbox only what it carries, once its own went.

While a runner holds b in place (its "held until" mark ahead), other commits carry b's
group and the held outbox's other messages (``in_place.carry_held``) and send only their
own. Once those went, the outbox is replaced by what was carried (one write, as the
clear of a commit without a mark): the next commit does not carry them again. Counted
here: the outbox of each commit and of each replace, what is sent, each handler's
calls; and that a flush that fails replaces nothing. Each scenario takes the log: the
memory log here, DynamoDB on moto in tests/integration/test_held_mark_dynamodb.py.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from stepflow.runtime import CoordinationLog, ExecutionRecord, InMemoryLog, Message
from stepflow.runtime.held_mark import held_until
from stepflow.runtime.task_groups import group_members

from tests.unit.test_runner_held_mark import LEFT, World, _task, beside_b
from tests.unit.test_runner_in_place import _until


class Outboxes:
    """Wraps a log: the outbox size of each commit, and of each replace (keep_outbox)."""

    def __init__(self, inner: CoordinationLog) -> None:
        self.inner = inner
        self.commits: list[int] = []
        self.keeps: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def commit(
        self, record: ExecutionRecord, expected_seq: int, events: Any, *, fence: Any = None
    ) -> None:
        self.inner.commit(record, expected_seq, events, fence=fence)
        self.commits.append(len(record.outbox))

    def keep_outbox(self, record: ExecutionRecord, messages: Any) -> None:
        self.keeps.append(len(messages))
        self.inner.keep_outbox(record, messages)


COUNT = "States.MathAdd($.n, 1)"


def _map_of(items: int) -> dict[str, Any]:
    """b held beside: a Wait of 10 s, then a Map of ``items`` c's (each with a timer)."""
    return beside_b(
        ("W", {"Type": "Wait", "Seconds": 10, "Next": "L"}),
        ("L", {"Type": "Pass", "Result": list(range(items)), "Next": "M"}),
        ("M", {"Type": "Map", "End": True, "ItemProcessor": _one("c")}),
    )


def _one(name: str) -> dict[str, Any]:
    return {"StartAt": name, "States": {name: _end(name)}}


def _end(name: str) -> dict[str, Any]:
    return _task(name, End=True)


def _held(log: CoordinationLog, machine: dict[str, Any]) -> tuple[Outboxes, World, Any]:
    """The execution with b running in place (blocked until released), its commits counted."""
    counted = Outboxes(log)
    w = World(counted, machine, block="b")  # type: ignore[arg-type]
    (a,) = [m for m in w.first if str(m.body.get("resource")).endswith(":a")]
    worker = w.hold(a)
    _until(lambda: w.calls["b"] == 1, "b never started in place")
    return counted, w, worker


def _due(w: World, fired: set[str]) -> list[Message]:
    """The Wait timers sent and due now, not delivered yet (the task timeouts are not due)."""
    sent = [*w.started, *w.bus.sent]
    due = [m for m in sent if m.body.get("type") == "TimerFired" and m.id not in fired]
    return [m for m in due if m.not_before <= w.now[0]]


def _runs(name: str, sent: list[Message]) -> Counter[str]:
    """The task ids of task ``name`` in the tasks-queue messages ``sent`` (groups opened)."""
    members = [m for g in sent for m in (group_members(g) or [g])]
    return Counter(
        str(m.body["task_id"]) for m in members if str(m.body["resource"]).endswith(":" + name)
    )


def an_inline_map_under_a_mark_keeps_only_what_it_carries(log: CoordinationLog) -> None:
    """The Wait ends (a plain stepper commits the Map's 20 c's), a runner answers each
    group of 10: after the first commit, each keeps b and its timer, not the c's."""
    counted, w, worker = _held(log, _map_of(20))
    try:
        w.now[0] += 10
        counted.commits.clear()
        for timer in _due(w, set()):
            assert w.transitions.handle_batch([timer]) == []
        groups = list(w.tasks.sent)
        assert len(groups) == 2 and len(_runs("c", groups)) == 20
        head = w.log.get(w.arn)  # b and its timer: the c's and their timers went
        assert head is not None and [m.kind for m in head.outbox] == ["task", "event"]
        for group in groups:
            assert w.other.handle_batch([group], None, lambda: LEFT) == []
        # 20 c's + 20 timers + b + its timer; then b and its timer (not 42, 42, 22)
        assert counted.commits == [42, 2, 2]
        assert counted.keeps == [2], "one replace: the commit that sent its own"
    finally:
        w.release.set()
        worker.join(10)
    assert w.calls == {"a": 1, "b": 1, "c": 20}
    assert _runs("c", w.tasks.sent) == {t: 1 for t in _runs("c", groups)}, "a c sent twice"
    assert w.succeeded()


def a_loop_under_a_live_mark_keeps_the_outbox_bounded(log: CoordinationLog) -> None:
    """Five rounds of Wait, c, count beside the held b: each commit keeps b and its timer
    and its own messages, never the rounds before (on holdmark: 4, 4, 6, 6, 8, ...)."""
    rounds = 5
    counted, w, worker = _held(
        log,
        beside_b(
            ("Init", {"Type": "Pass", "Result": 0, "ResultPath": "$.n", "Next": "W"}),
            ("W", {"Type": "Wait", "Seconds": 10, "Next": "c"}),
            ("c", _task("c", ResultPath="$.r", Next="Count")),
            ("Count", {"Type": "Pass", "Parameters": {"n.$": COUNT}, "Next": "Ch"}),
            (
                "Ch",
                {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.n", "NumericEquals": rounds, "Next": "Done"}],
                    "Default": "W",
                },
            ),
            ("Done", {"Type": "Succeed"}),
        ),
    )
    fired: set[str] = set()
    pending: list[int] = []
    try:
        counted.commits.clear()
        for _ in range(rounds):
            w.now[0] += 10
            for timer in _due(w, fired):
                fired.add(timer.id)
                assert w.transitions.handle_batch([timer]) == []
            (c,) = w.tasks.sent
            w.tasks.sent.clear()
            assert w.other.handle_batch([c], None, lambda: LEFT) == []
            head = w.log.get(w.arn)
            assert head is not None
            pending.append(len(head.outbox))
        # each round: the Wait's end (c, its timer, b, its timer), then c's (the Wait's
        # timer; none after the last round)
        assert counted.commits == [4, 3] * (rounds - 1) + [4, 2]
        assert counted.keeps == [2] * (2 * rounds - 1)
        assert pending == [2] * rounds, "b and its timer, nothing more"
    finally:
        w.release.set()
        worker.join(10)
    assert w.calls == {"a": 1, "b": 1, "c": rounds}
    assert w.succeeded()


def a_flush_that_fails_replaces_nothing(log: CoordinationLog) -> None:
    """The Map's groups fail to go: the outbox keeps everything and the mark ends (review:
    a task nobody holds waited for it), so the timer's redelivery re-sends them at once;
    the held b's group meets its holder's live lease; each c runs once."""
    counted, w, worker = _held(log, _map_of(20))
    try:
        w.now[0] += 10
        w.tasks.down = True
        timers = _due(w, set())
        for timer in timers:
            [(_, exc)] = w.transitions.handle_batch([timer])
            assert isinstance(exc, ConnectionError)
        w.tasks.down = False
        head = w.log.get(w.arn)
        assert head is not None and len(head.outbox) == 42, "lost what did not go"
        assert counted.keeps == [42] and held_until(head) is None, "the mark did not end"
        w.tasks.sent.clear()
        for timer in timers:  # redelivered: the pending outbox goes, now
            assert w.transitions.handle_batch([timer]) == []
        groups = list(w.tasks.sent)
        assert len(_runs("c", groups)) == 20
        for group in groups:
            if _runs("c", [group]):
                assert w.other.handle_batch([group], None, lambda: LEFT) == []
            else:  # b's group: its holder still runs it, the claim is refused
                assert w.other.handle_batch([group], None, lambda: LEFT) != []
    finally:
        w.release.set()
        worker.join(10)
    assert w.calls == {"a": 1, "b": 1, "c": 20}
    assert _runs("c", w.tasks.sent) == {t: 1 for t in _runs("c", groups)}
    assert w.succeeded()


def test_an_inline_map_under_a_mark_keeps_only_what_it_carries() -> None:
    an_inline_map_under_a_mark_keeps_only_what_it_carries(InMemoryLog())


def test_a_loop_under_a_live_mark_keeps_the_outbox_bounded() -> None:
    a_loop_under_a_live_mark_keeps_the_outbox_bounded(InMemoryLog())


def test_a_flush_that_fails_replaces_nothing() -> None:
    a_flush_that_fails_replaces_nothing(InMemoryLog())
