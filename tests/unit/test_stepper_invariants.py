"""Invariants of the durable runtime under duplicates, crashes and concurrent steppers.

Each test drives the real Stepper over the in-memory log and bus and compares
the outcome with the pure in-memory engine (the reference semantics).
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stepflow.asl import parse
from stepflow.engine import RunTask
from stepflow.runtime import (
    ExecutionInputMismatchError,
    InMemoryBus,
    InMemoryLog,
    Message,
    Stepper,
    TaskLeaseHeldError,
    leases,
)
from stepflow.runtime.outcome import TaskOutcome
from stepflow.runtime.ports import ExecutionRecord
from stepflow.testing import execute
from stepflow.testing.handlers import run_handler

FN = "arn:aws:lambda:us-east-1:123456789012:function:"
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:Orders"

DEFINITION = {
    "StartAt": "Validate",
    "States": {
        "Validate": {
            "Type": "Task",
            "Resource": FN + "validate",
            "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 2}],
            "Next": "Wait",
        },
        "Wait": {"Type": "Wait", "Seconds": 1200, "Next": "Lines"},
        "Lines": {
            "Type": "Map",
            "ItemsPath": "$.lines",
            "MaxConcurrency": 2,
            "ItemProcessor": {
                "StartAt": "Pack",
                "States": {"Pack": {"Type": "Task", "Resource": FN + "pack", "End": True}},
            },
            "ResultPath": "$.packed",
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}
INPUT = {"lines": [1, 2, 3]}
MACHINE = parse(DEFINITION)


class Flaky(Exception):
    pass


def handlers() -> dict[str, Any]:
    seen: set[str] = set()

    def validate(payload: Any) -> Any:
        if "validate" not in seen:  # fails once, then succeeds
            seen.add("validate")
            raise Flaky("first try")
        return {**payload, "valid": True}

    return {"validate": validate, "pack": lambda n: n * 10}


REFERENCE = execute(DEFINITION, INPUT, handlers=handlers(), name="e1", seed=7, start_time=None)


class Harness:
    """A stepper, its log and bus, and helpers to deliver messages with faults."""

    def __init__(self, *, inline_tasks: bool = True) -> None:
        self.log = InMemoryLog()
        self.bus = InMemoryBus(1_000.0)
        bound = handlers()

        def invoke(body: dict[str, Any]) -> TaskOutcome:
            command = RunTask(body["task_id"], body["resource"], body["input"], body["state_name"])
            return run_handler(bound, command)

        self.stepper = Stepper(
            log=self.log,
            bus=self.bus,
            definitions=lambda _: MACHINE,
            clock=lambda: self.bus.now,
            invoker=invoke,
            inline_tasks=inline_tasks,
        )
        self.record = self.stepper.start_execution(
            state_machine_arn=SM, name="e1", input=INPUT, seed=7
        )

    def history(self) -> list[dict[str, Any]]:
        return self.log.history(self.record.execution_arn).events

    def final(self) -> ExecutionRecord:
        record = self.log.get(self.record.execution_arn)
        assert record is not None
        return record

    def drain(self, deliver: Any = None, limit: int = 10_000) -> None:
        for _ in range(limit):
            message = self.bus.receive()
            if message is None:
                return
            (deliver or self.deliver)(message)
        raise AssertionError("the bus did not drain")

    def deliver(self, message: Message) -> None:
        self.stepper.handle(message)
        self.bus.ack(message)


def assert_matches_reference(h: Harness) -> None:
    final = h.final()
    history = h.history()
    assert final.status == "SUCCEEDED"
    assert final.state["output"] == REFERENCE.result
    assert [e["type"] for e in history] == [e["type"] for e in REFERENCE.history]
    ids = [e["id"] for e in history]
    assert ids == list(range(1, len(ids) + 1)), "an event was recorded twice or lost"
    assert not final.outbox


@pytest.mark.parametrize("inline_tasks", [True, False], ids=["inline-tasks", "queued-tasks"])
def test_a_clean_run_matches_the_in_memory_engine(inline_tasks: bool) -> None:
    h = Harness(inline_tasks=inline_tasks)
    h.drain()
    assert_matches_reference(h)


@pytest.mark.parametrize("inline_tasks", [True, False], ids=["inline-tasks", "queued-tasks"])
def test_every_message_delivered_twice_changes_nothing(inline_tasks: bool) -> None:
    h = Harness(inline_tasks=inline_tasks)

    def twice(message: Message) -> None:
        h.stepper.handle(message)
        h.stepper.handle(message)
        h.bus.ack(message)

    h.drain(twice)
    assert_matches_reference(h)


class CrashingLog(InMemoryLog):
    """Fails the n-th commit, before or after writing it."""

    def __init__(self, inner: InMemoryLog, at: int, after_write: bool) -> None:
        self.__dict__.update(inner.__dict__)
        self.at, self.after_write, self.commits = at, after_write, 0

    def commit(
        self, record: ExecutionRecord, expected_seq: int, events: Any, *, fence: Any = None
    ) -> None:
        self.commits += 1
        if self.commits == self.at and not self.after_write:
            raise ConnectionError("crash before commit")
        super().commit(record, expected_seq, events, fence=fence)
        if self.commits == self.at:
            raise ConnectionError("crash after commit, before send")


@pytest.mark.parametrize("inline_tasks", [True, False], ids=["inline-tasks", "queued-tasks"])
@pytest.mark.parametrize("after_write", [False, True], ids=["before-commit", "after-commit"])
@pytest.mark.parametrize("at", range(1, 12))
def test_a_crash_around_any_commit_is_repaired_by_redelivery(
    at: int, after_write: bool, inline_tasks: bool
) -> None:
    h = Harness(inline_tasks=inline_tasks)
    h.log = h.stepper.log = CrashingLog(h.log, at, after_write)  # type: ignore[assignment]

    def deliver(message: Message) -> None:
        try:
            h.stepper.handle(message)
        except ConnectionError:
            return  # not acknowledged: the queue delivers it again
        h.bus.ack(message)

    h.drain(deliver)
    assert_matches_reference(h)


def test_a_crash_after_sending_before_the_ack_redelivers_harmlessly() -> None:
    h = Harness()
    crashed: set[str] = set()

    def deliver(message: Message) -> None:
        h.stepper.handle(message)
        if message.id not in crashed:  # the process dies before deleting the message
            crashed.add(message.id)
            return
        h.bus.ack(message)

    h.drain(deliver)
    assert_matches_reference(h)


def test_two_steppers_racing_on_one_execution_commit_each_event_once() -> None:
    h = Harness()
    rival = Stepper(
        log=h.log,
        bus=h.bus,
        definitions=lambda _: MACHINE,
        clock=lambda: h.bus.now,
        invoker=h.stepper.invoker,
    )
    original_get = h.log.get
    raced: list[bool] = []

    def get_then_race(arn: str) -> ExecutionRecord | None:
        record = original_get(arn)
        if not raced and record is not None and record.seq == 3:
            raced.append(True)
            queued = h.bus.receive()
            assert queued is not None
            rival.handle(queued)  # the rival commits first; our commit must lose and retry
            h.bus.ack(queued)
        return record

    h.log.get = get_then_race  # type: ignore[method-assign]
    h.drain()
    assert raced
    assert_matches_reference(h)


def test_start_execution_is_idempotent_by_name() -> None:
    h = Harness()
    again = h.stepper.start_execution(state_machine_arn=SM, name="e1", input=INPUT, seed=9)
    assert again.execution_arn == h.record.execution_arn
    with pytest.raises(ExecutionInputMismatchError):
        h.stepper.start_execution(state_machine_arn=SM, name="e1", input={"other": 1}, seed=9)
    h.drain()
    assert_matches_reference(h)


def test_a_wait_longer_than_the_queue_delay_re_arms_itself() -> None:
    h = Harness()
    h.drain()
    waits = [
        m for m in h.bus.sent if m.body.get("type") == "TimerFired" and m.not_before - 1_000 >= 1200
    ]
    assert len(waits) >= 2, "a 1200 s wait needs a re-armed 900 s message"


def test_a_malformed_message_is_not_swallowed() -> None:
    h = Harness()
    with pytest.raises(ValueError):
        h.stepper.handle(Message(h.record.execution_arn, "bad", "event", {"type": "Bogus"}))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), inline_tasks=st.booleans())
def test_random_order_duplicates_and_crashes_never_change_the_outcome(
    seed: int, inline_tasks: bool
) -> None:
    """GIVEN any batching and order of due messages, duplicates and crashes,
    THEN the execution ends as in memory, each event recorded once."""
    rng = random.Random(seed)
    h = Harness(inline_tasks=inline_tasks)
    h.log = h.stepper.log = CrashingLog(h.log, rng.randint(1, 12), rng.random() < 0.5)  # type: ignore[assignment]
    for _ in range(10_000):
        if not len(h.bus):
            break
        batch = h.bus.receive_batch(rng.randint(1, 10))
        rng.shuffle(batch)
        if rng.random() < 0.2:
            batch = batch + batch[:1]  # a duplicate inside one batch
        failures = h.stepper.handle_batch(batch)
        failed = {id(m) for m, _ in failures}
        assert all(isinstance(exc, ConnectionError) for _, exc in failures), failures
        for message in batch:
            if id(message) in failed or rng.random() < 0.2:
                continue  # failed or ack lost: delivered again later
            h.bus.ack(message)
    final = h.final()
    history = h.history()
    assert final.status == "SUCCEEDED"
    assert final.state["output"] == REFERENCE.result
    assert Counter(e["type"] for e in history) == Counter(e["type"] for e in REFERENCE.history)
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))


def test_a_task_duplicate_while_leased_waits_and_a_finished_one_runs_nothing_again() -> None:
    h = Harness()
    task = h.bus.receive()
    assert task is not None and task.kind == "task"
    arn, task_id = h.record.execution_arn, task.body["task_id"]
    calls = Counter[str]()
    invoke = h.stepper.invoker

    def counted(body: dict[str, Any]) -> TaskOutcome:
        calls[str(body["task_id"])] += 1
        return invoke(body)

    h.stepper.invoker = counted
    # GIVEN another worker holds a live lease on the attempt
    assert leases.claim(h.log, arn, task_id, "other-worker", h.bus.now, 60).status == "acquired"
    # THEN this worker refuses to run it now (the message stays queued)
    with pytest.raises(TaskLeaseHeldError):
        h.stepper.handle(task)
    # WHEN the lease expires THEN the attempt is taken over, runs once, and its result is
    # committed by the stepper that ran it (issue 18: no result message)
    h.bus.now += 61
    h.stepper.handle(task)
    assert calls == {task_id: 1}
    assert not [m for m in h.bus.sent if m.id.endswith("#result")]
    assert [e["type"] for e in h.history()].count("LambdaFunctionFailed") == 1  # Flaky, once
    # AND a later duplicate finds the attempt closed: it runs nothing and sends nothing
    h.stepper.handle(task)
    assert calls == {task_id: 1}
    assert not [m for m in h.bus.sent if m.id.endswith("#result")]
    assert [e["type"] for e in h.history()].count("LambdaFunctionFailed") == 1


def test_stop_execution_aborts_and_later_results_are_ignored() -> None:
    h = Harness()
    task = h.bus.receive()
    assert task is not None
    stopped = h.stepper.stop_execution(h.record.execution_arn, error="Operator", cause="manual")
    assert stopped is not None and stopped.status == "ABORTED"
    h.drain()  # the task still runs and reports; its result must change nothing
    final = h.final()
    assert (final.status, final.state["error"]) == ("ABORTED", "Operator")
    assert h.history()[-1]["type"] == "ExecutionAborted"
    assert h.stepper.stop_execution(h.record.execution_arn) is not None  # idempotent
    assert h.history()[-1]["type"] == "ExecutionAborted"


# Commit 1 is the first task's result, committed by the stepper that ran it as a queued
# task: its failure falls back to the lease and a result message (runner_commit.py), so
# no stepper dies there; the crashes start at the commits that run inline tasks.
@pytest.mark.parametrize("at", range(2, 6))
def test_another_stepper_takes_over_inline_tasks_only_after_the_lease_expires(at: int) -> None:
    # GIVEN a stepper that dies right after a commit (its inline tasks leased to it)
    h = Harness()
    crashing = CrashingLog(h.log, at, after_write=True)
    h.log = h.stepper.log = crashing  # type: ignore[assignment]
    crashed_at: list[float] = []

    def deliver(message: Message) -> None:
        try:
            h.stepper.handle(message)
        except ConnectionError:
            crashed_at.append(h.bus.now)
            # WHEN a new process (another owner) takes over the queue
            h.stepper = Stepper(
                log=crashing,
                bus=h.bus,
                definitions=lambda _: MACHINE,
                clock=lambda: h.bus.now,
                invoker=h.stepper.invoker,
                task_lease_seconds=h.stepper.task_lease_seconds,
            )
            return
        h.bus.ack(message)

    h.drain(deliver)
    # THEN the execution still ends exactly as in memory, each event once
    assert crashed_at
    assert_matches_reference(h)


def test_inline_tasks_held_by_a_crashed_stepper_wait_for_its_lease_and_then_run_once() -> None:
    # GIVEN Validate -> ... with inline tasks, and a stepper that crashes inside the Map's tasks
    h = Harness()
    calls: Counter[str] = Counter()
    bound = handlers()

    def invoke(body: dict[str, Any]) -> TaskOutcome:
        calls[body["state_name"]] += 1
        command = RunTask(body["task_id"], body["resource"], body["input"], body["state_name"])
        return run_handler(bound, command)

    def crash(body: dict[str, Any]) -> TaskOutcome:
        if body["state_name"] == "Pack":
            calls["crashed"] += 1
            raise ConnectionError("the stepper died while running its inline tasks")
        return invoke(body)

    first = Stepper(
        log=h.log, bus=h.bus, definitions=lambda _: MACHINE, clock=lambda: h.bus.now, invoker=crash
    )
    second = Stepper(
        log=h.log, bus=h.bus, definitions=lambda _: MACHINE, clock=lambda: h.bus.now, invoker=invoke
    )
    crashed_at = 0.0

    def deliver(message: Message) -> None:
        nonlocal crashed_at
        try:
            (second if calls["crashed"] else first).handle(message)
        except ConnectionError:
            crashed_at = h.bus.now
            h.bus.send(message)  # redelivered at once, to the other stepper
        h.bus.ack(message)
        if calls["crashed"] and calls["Pack"] == 0:
            # WHEN the second stepper finds the Pack tasks in the outbox THEN it leaves them
            # to the first one's lease (900 s) instead of running them now
            assert h.bus.now < crashed_at + 900

    h.drain(deliver)
    # THEN after the lease they ran once each, and the execution matches the reference
    assert calls["crashed"] == 1 and calls["Pack"] == 3
    assert_matches_reference(h)


@pytest.mark.parametrize("inline_tasks", [True, False], ids=["inline-tasks", "queued-tasks"])
def test_a_task_whose_invocation_raised_is_retried_at_once_not_after_its_lease(
    inline_tasks: bool,
) -> None:
    # GIVEN a stepper whose first Pack invocation raises (its lease is then given back)
    h = Harness(inline_tasks=inline_tasks)
    bound = handlers()
    runs: list[tuple[str, float]] = []

    def invoke(body: dict[str, Any]) -> TaskOutcome:
        runs.append((body["state_name"], h.bus.now))
        if body["state_name"] == "Pack" and len([r for r in runs if r[0] == "Pack"]) == 1:
            raise ConnectionError("the invocation failed")
        command = RunTask(body["task_id"], body["resource"], body["input"], body["state_name"])
        return run_handler(bound, command)

    h.stepper.invoker = invoke

    def deliver(message: Message) -> None:
        try:
            h.stepper.handle(message)
        except ConnectionError:
            h.bus.send(message)  # redelivered at once
        h.bus.ack(message)

    h.drain(deliver)
    # THEN the redelivery ran it again at once, and the execution finished as in memory
    packs = [at for name, at in runs if name == "Pack"]
    assert len(packs) == 4 and packs[1] - packs[0] < 60
    assert_matches_reference(h)
