"""A held outbox is not re-sent by other deliveries while its mark is ahead (in_place.py).

A runner that holds its commit's tasks to run them in place writes "held until" its
invocation's deadline on the head, in that commit. Counted here, while the tasks run
in place: what another delivery for the execution sends (a repair message, another
runner's commit), the lease records written, each handler's calls; and that a holder
that dies (its mark passed) still has its tasks re-sent and run once. Each scenario
takes the log: the memory log here, DynamoDB on moto in
tests/integration/test_held_mark_dynamodb.py.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from stepflow.asl import parse
from stepflow.runtime import CoordinationLog, InMemoryLog, Message, Stepper
from stepflow.runtime.held_mark import CLOCK_SKEW, HELD_UNTIL, held_until
from stepflow.runtime.repair import repair_message
from stepflow.runtime.task_groups import group_members
from stepflow.testing.handlers import task_invoker

from tests.unit.test_runner_batch import FN, SM, RecordingBus
from tests.unit.test_runner_group import Crash, lease_writes
from tests.unit.test_runner_in_place import _map_of_b_then_c, _until

NOW = 1_000.0
LEFT = 600.0  # the holder's invocation's seconds left


def _task(name: str, **extra: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": FN + name, "TimeoutSeconds": 100, **extra}


CHAIN = {  # a, then a Parallel of b and c (held in place by a's runner), each with a timer
    "StartAt": "a",
    "States": {
        "a": _task("a", Next="Both"),
        "Both": {
            "Type": "Parallel",
            "End": True,
            "Branches": [{"StartAt": n, "States": {n: _task(n, End=True)}} for n in "bc"],
        },
    },
}


def beside_b(*states: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """A Parallel: a then b (b held in place by a's runner) beside a branch of ``states``.

    ``states`` are the branch's (name, state) pairs, the first its start.
    """
    return {
        "StartAt": "P",
        "States": {
            "P": {
                "Type": "Parallel",
                "End": True,
                "Branches": [
                    {
                        "StartAt": "a",
                        "States": {"a": _task("a", Next="b"), "b": _task("b", End=True)},
                    },
                    {"StartAt": states[0][0], "States": dict(states)},
                ],
            }
        },
    }


BRANCHES = beside_b(("c", _task("c", End=True)))  # b is held by a's runner while c's commits


class World:
    """One execution on ``log``: its API stepper, the transition stepper, two runners."""

    def __init__(self, log: CoordinationLog, machine: dict[str, Any], block: str = "") -> None:
        self.log, self.now = log, [NOW]
        self.calls = Counter[str]()
        self.release = threading.Event()
        self.bus, self.tasks = RecordingBus(), RecordingBus()
        parsed = parse(machine)

        def handler(name: str) -> Callable[[Any], Any]:
            def run(payload: Any) -> Any:
                self.calls[name] += 1
                if name == block:
                    self.release.wait(10)
                return {"ran": name}

            return run

        invoker = task_invoker({n: handler(n) for n in "abc"})

        def stepper(concurrency: int) -> Stepper:
            return Stepper(
                log=log,
                bus=self.bus,  # type: ignore[arg-type]
                definitions=lambda _arn: parsed,
                clock=lambda: self.now[0],
                invoker=invoker,
                inline_tasks=False,
                tasks_bus=self.tasks,  # type: ignore[arg-type]
                task_concurrency=concurrency,
            )

        stepper(1).start_execution(state_machine_arn=SM, name="x", input={}, seed=1)
        self.first = [m for g in self.tasks.sent for m in (group_members(g) or [g])]
        self.arn = self.first[0].execution_arn
        self.transitions = stepper(1)
        self.runner, self.other = stepper(10), stepper(10)
        for runner in (self.runner, self.other):
            runner.task_group_wait = 60.0
        self.started = list(self.bus.sent)  # the start's timers (a Wait's)
        self.tasks.sent.clear()
        self.bus.sent.clear()
        self.leases = lease_writes(log)  # type: ignore[arg-type]

    def hold(self, message: Message) -> threading.Thread:
        """The runner runs ``message`` and then, in place, what its commit gives back."""
        worker = threading.Thread(
            target=self.runner.handle_batch, args=([message], None, lambda: LEFT)
        )
        worker.start()
        return worker

    def die_holding(self, first: Message) -> None:
        """The runner runs ``first`` with a deadline, holds what its commit gives back, and
        dies as it claims that (its first lease write but ``first``'s own)."""
        put = self.log.put_lease

        def dies(lease: Any) -> None:
            if lease.task_id != first.body["task_id"]:
                raise Crash("the holder dies")
            put(lease)

        self.log.put_lease = dies  # type: ignore[method-assign]
        try:
            with pytest.raises(Crash):
                self.runner.handle_batch([first], None, lambda: LEFT)
        finally:
            self.log.put_lease = put  # type: ignore[method-assign]

    def timers(self) -> Counter[str]:
        """The timers sent, by message id."""
        return Counter(m.id for m in self.bus.sent if m.body.get("type") == "TimerFired")

    def succeeded(self) -> bool:
        head = self.log.get(self.arn)
        return head is not None and head.status == "SUCCEEDED" and head.outbox == ()


def a_repair_message_leaves_a_held_outbox_alone(log: CoordinationLog) -> None:
    """The API's delayed repair message arrives while b and c run in place."""
    w = World(log, CHAIN, block="b")
    (first,) = w.first
    worker = w.hold(first)
    try:
        _until(lambda: w.calls["b"] == 1, "b never started in place")
        timers = w.timers()
        assert len(timers) == 2  # b's and c's timeouts, sent by the holder
        w.now[0] += 60
        assert w.transitions.handle_batch([repair_message(w.arn)]) == []
        assert w.tasks.sent == [], "the held group was sent again"
        assert w.timers() == timers, "the held outbox's timers were sent again"
        head = w.log.get(w.arn)  # held until the holder's deadline, its outbox pending
        assert head is not None and held_until(head) == NOW + LEFT
        assert len(head.outbox) == 4
    finally:
        w.release.set()
        worker.join(10)
    assert w.calls == {"a": 1, "b": 1, "c": 1}
    assert w.tasks.sent == [] and len(w.leases) == 2  # a's claim, the group's claim
    assert w.succeeded()


def another_runners_commit_leaves_a_held_outbox_alone(log: CoordinationLog) -> None:
    """c's runner commits c while b (after a) runs in place in a's runner."""
    w = World(log, BRANCHES, block="b")
    a, c = sorted(w.first, key=lambda m: str(m.body.get("resource")))
    worker = w.hold(a)
    try:
        _until(lambda: w.calls["b"] == 1, "b never started in place")
        timers = w.timers()
        assert w.other.handle_batch([c], None, lambda: LEFT) == []
        assert w.tasks.sent == [], "the held task was sent again"
        assert w.timers() == timers, "the held outbox's timer was sent again"
        head = w.log.get(w.arn)
        assert head is not None and any(m.body.get("task_id") for m in head.outbox), "b's copy"
    finally:
        w.release.set()
        worker.join(10)
    assert w.calls == {"a": 1, "b": 1, "c": 1}
    assert w.tasks.sent == [] and len(w.leases) == 3  # a's, c's and b's claims
    assert w.succeeded()


def a_holder_that_dies_has_its_tasks_resent_after_the_mark(log: CoordinationLog) -> None:
    """a's runner commits, holds b and c, and dies as it claims them: after the mark, the
    repair message re-sends them once and another runner runs each once."""
    w = World(log, CHAIN)
    (first,) = w.first
    w.die_holding(first)
    assert w.calls == {"a": 1}
    w.now[0] += 60  # the API's repair message: the mark is ahead, nothing is sent
    assert w.transitions.handle_batch([repair_message(w.arn)]) == []
    assert w.tasks.sent == []
    w.now[0] = NOW + LEFT + CLOCK_SKEW + 1  # the mark has passed: the repair job's message
    assert w.transitions.handle_batch([repair_message(w.arn)]) == []
    (group,) = w.tasks.sent
    assert len(group.body["group"]) == 2
    assert w.other.handle_batch([group], None, lambda: LEFT) == []
    assert w.calls == {"a": 1, "b": 1, "c": 1}
    assert w.succeeded()


def a_dead_holders_task_outlives_another_runners_commit(log: CoordinationLog) -> None:
    """a's runner commits, holds b and dies as it claims it; c's runner commits c while
    the mark is ahead: b stays in the outbox (its only copy), re-sent after the mark."""
    w = World(log, BRANCHES)
    a, c = sorted(w.first, key=lambda m: str(m.body.get("resource")))
    w.die_holding(a)  # as it claims b
    w.now[0] += 10
    assert w.other.handle_batch([c], None, lambda: LEFT) == []
    assert w.tasks.sent == []  # the mark is ahead: b is not sent
    w.now[0] = NOW + LEFT + CLOCK_SKEW + 1
    assert w.transitions.handle_batch([repair_message(w.arn)]) == []
    (b,) = w.tasks.sent
    assert w.other.handle_batch([b], None, lambda: LEFT) == []
    assert w.calls == {"a": 1, "b": 1, "c": 1}
    assert w.succeeded()


def test_a_repair_message_leaves_a_held_outbox_alone() -> None:
    a_repair_message_leaves_a_held_outbox_alone(InMemoryLog())


def test_another_runners_commit_leaves_a_held_outbox_alone() -> None:
    another_runners_commit_leaves_a_held_outbox_alone(InMemoryLog())


def test_a_holder_that_dies_has_its_tasks_resent_after_the_mark() -> None:
    a_holder_that_dies_has_its_tasks_resent_after_the_mark(InMemoryLog())


def test_a_dead_holders_task_outlives_another_runners_commit() -> None:
    a_dead_holders_task_outlives_another_runners_commit(InMemoryLog())


def test_a_mark_that_is_not_a_near_number_of_its_own_commit_holds_nothing() -> None:
    """Hostile marks (a string, a bool, infinity, NaN, a year ahead, a bare number,
    another commit's seq) never stop a re-send; nor does a mark within the clock skew."""
    from stepflow.runtime.held_mark import held
    from stepflow.runtime.ports import ExecutionRecord

    def record(mark: Any) -> ExecutionRecord:
        return ExecutionRecord("arn", SM, "x", {}, "RUNNING", 1, {}, attributes={HELD_UNTIL: mark})

    hostile: list[Any] = ["2000", True, None, NOW + 10, [1, "2000"], [True, NOW + 10]]
    hostile += [[1, float("inf")], [1, float("nan")], [1, NOW + 365 * 86400], [1], [1, 2, 3]]
    for mark in [*hostile, [0, NOW + 10], [2, NOW + 10]]:  # the last two: another commit's
        assert not held(record(mark), NOW), mark
    assert held(record([1, NOW + 10]), NOW) and held(record([1, NOW + CLOCK_SKEW + 1]), NOW)
    assert not held(record([1, NOW + CLOCK_SKEW]), NOW)  # a writer's clock a little ahead
    assert not held(record([1, NOW - 1]), NOW)


def test_a_map_held_in_place_is_never_sent_again_by_its_own_partial_commits() -> None:
    """A Map of 10 (b then c), b's held in place with a deadline: b0 ends first and
    commits while its siblings run, so c0 is sent; the group of b's is not sent again
    (on main: once more, its claim busy). Each c is sent once and runs once."""
    calls = Counter[str]()
    log, runner, first = _map_of_b_then_c(calls, 10, lambda i: 0.03 * i)
    runner.task_group_wait = 0.01
    tasks = runner.tasks_bus
    assert isinstance(tasks, RecordingBus)
    tasks.sent.clear()
    left = runner.task_lease_seconds  # the group's claim is covered
    assert runner.handle_batch([first], None, lambda: left) == []
    assert calls["a"] == 1 and calls["b"] == 10
    assert not [m for m in tasks.sent if _runs("b", m)], "the held b's were sent again"
    queue = list(tasks.sent)
    while queue:  # another runner runs what was sent
        sent = len(tasks.sent)
        assert runner.handle_batch([queue.pop(0)], None, lambda: left) == []
        queue.extend(tasks.sent[sent:])
    assert calls == {"a": 1, "b": 10, "c": 10}
    assert not [m for m in tasks.sent if _runs("b", m)]
    head = log.get(first.execution_arn)
    assert head is not None and head.status == "SUCCEEDED" and head.outbox == ()


def _runs(name: str, message: Message) -> bool:
    """Whether a tasks-queue message (a group's members included) runs task ``name``."""
    members = group_members(message) or [message]
    return any(str(m.body.get("resource")).endswith(":" + name) for m in members)
