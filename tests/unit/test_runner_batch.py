"""The runner takes up to ten task messages per invocation and runs them side by side.

One receive, one delete and one Lambda request for a Map's ten tasks instead of ten
of each (issue 18's cost goal). The runner commits the results of the tasks it ran
itself, one commit per execution of the results that ended together (a slow task
holds no other result, of its own execution or another); the lease's recorded result and a
result message are the fallback when that commit does not happen. A task that
cannot run now fails alone.

These tests run the tasks as single messages, each under its own lease: the shape a
release before the group claim sent, still queued at an upgrade. One commit's tasks
now travel as one group message under one lease: tests/unit/test_runner_group.py.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from stepflow.asl import parse
from stepflow.engine import TaskSucceeded
from stepflow.runtime import InMemoryLog, Message, Stepper, encode_event, leases
from stepflow.runtime.messages import decode_event, task_lease_key
from stepflow.runtime.task_groups import group_members
from stepflow.runtime.task_runs import TaskLeaseHeldError
from stepflow.testing.handlers import task_invoker

FN = "arn:aws:lambda:us-east-1:123456789012:function:"
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:Three"
THREE = {
    "StartAt": "All",
    "States": {
        "All": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": n, "States": {n: {"Type": "Task", "Resource": FN + n, "End": True}}}
                for n in ("a", "b", "c")
            ],
            "End": True,
        }
    },
}


class RecordingBus:
    """A thread-safe bus that keeps what is sent (the runner sends from its threads)."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.down = False  # True: every send raises (the queue is unreachable)
        self._lock = threading.Lock()

    def send(self, message: Message, delay_seconds: int = 0) -> None:
        if self.down:
            raise ConnectionError("the queue is unreachable")
        with self._lock:
            self.sent.append(message)


class CountingLog(InMemoryLog):
    """The in-memory log, its commits counted per execution; ``fail`` makes them raise."""

    def __init__(self) -> None:
        super().__init__()
        self.commits = Counter[str]()
        self.fail = False
        self.before: list[Any] = []  # called before the next commits, once each

    def commit(self, record: Any, expected_seq: int, events: Any, **kwargs: Any) -> None:
        if self.fail:
            raise RuntimeError("the table is unreachable")
        while self.before:
            self.before.pop(0)()
        super().commit(record, expected_seq, events, **kwargs)
        self.commits[record.execution_arn] += 1


def setup(
    handlers: dict[str, Any],
    machine: dict[str, Any] = THREE,
    names: tuple[str, ...] = ("x",),
    *,
    grouped: bool = False,
) -> tuple[CountingLog, RecordingBus, Stepper, list[Message]]:
    """Executions waiting on their tasks, the task messages, and a runner with ten workers.

    The messages are single tasks' (as sent before the group claim) unless ``grouped``.
    """
    log, bus, tasks = CountingLog(), RecordingBus(), RecordingBus()
    parsed = parse(machine)

    def stepper(concurrency: int) -> Stepper:
        return Stepper(
            log=log,
            bus=bus,  # type: ignore[arg-type]
            definitions=lambda _arn: parsed,
            clock=lambda: 1_000.0,
            invoker=task_invoker(handlers),
            inline_tasks=False,
            tasks_bus=tasks,  # type: ignore[arg-type]
            task_concurrency=concurrency,
        )

    for name in names:
        stepper(1).start_execution(state_machine_arn=SM, name=name, input={"n": name}, seed=1)
    assert {m.kind for m in tasks.sent} == {"task"}
    log.commits.clear()
    runner = stepper(10)
    # An execution's results are committed when its last task of the batch ends, not by
    # the 0.2 s timer, whatever the machine's load (tests that need the timer set it).
    runner.task_group_wait = 60.0
    if grouped:
        return log, bus, runner, list(tasks.sent)
    return log, bus, runner, [x for m in tasks.sent for x in (group_members(m) or [m])]


def counting(calls: Counter[str], name: str) -> Any:
    """A handler that counts its calls."""

    def run(payload: Any) -> Any:
        calls[name] += 1
        return {"ran": name}

    return run


def history(log: InMemoryLog, arn: str) -> list[str]:
    """The types of an execution's events."""
    return [str(e["type"]) for e in log.history(arn).events]


def test_a_batch_of_tasks_runs_side_by_side_each_once_results_committed_together() -> None:
    # GIVEN three tasks whose handlers each wait until all three are running
    together = threading.Barrier(3, timeout=10)
    calls = Counter[str]()

    def handler(name: str) -> Any:
        def run(payload: Any) -> Any:
            calls[name] += 1
            together.wait()  # one after the other, this would break the barrier
            return {"ran": name}

        return run

    log, bus, runner, messages = setup({n: handler(n) for n in ("a", "b", "c")})
    arn = messages[0].execution_arn
    # WHEN the runner gets the three in one batch
    failures = runner.handle_batch(messages)
    # THEN all three ran at the same time, once each, and their results are one commit
    assert failures == [] and calls == {"a": 1, "b": 1, "c": 1}
    assert log.commits == {arn: 1}
    record = log.get(arn)
    assert record is not None and record.status == "SUCCEEDED"
    assert record.state["output"] == [{"ran": "a"}, {"ran": "b"}, {"ran": "c"}]
    # AND nothing was sent (no result message; no lease result recorded either)
    assert bus.sent == []
    for m in messages:
        lease = log.lease(arn, task_lease_key(m.body))
        assert lease is not None and lease.result is None


def test_a_task_that_cannot_run_now_fails_alone() -> None:
    calls = Counter[str]()
    log, bus, runner, messages = setup({n: counting(calls, n) for n in ("a", "b", "c")})
    # GIVEN the second task's lease is held by another live runner
    held = messages[1]
    claim = leases.claim(log, held.execution_arn, task_lease_key(held.body), "other", 1_000.0, 900)
    assert claim.status == "acquired"
    # WHEN the batch runs
    failures = runner.handle_batch(messages)
    # THEN only that message failed (it comes back later); the other two ran and their
    # results are committed together, sent nowhere
    assert [(m.id, type(e)) for m, e in failures] == [(held.id, TaskLeaseHeldError)]
    assert sum(calls.values()) == 2 and bus.sent == []
    assert log.commits == {held.execution_arn: 1}
    assert history(log, held.execution_arn).count("LambdaFunctionSucceeded") == 2


SOLO = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN + "f", "End": True}}}


def test_a_slow_task_does_not_hold_another_executions_commit() -> None:
    # GIVEN two executions' tasks in one batch; the slow one returns only once it has
    # seen the other execution's result committed (or gives up after 10 s)
    seen: dict[str, bool] = {}
    log: CountingLog | None = None

    def handler(payload: Any) -> Any:
        if payload["n"] == "slow":
            assert log is not None
            quick = next(a for a in list(log.commits) if a.endswith(":quick"))
            seen["quick committed"] = _wait(lambda: log.commits[quick] == 1)
        return {"ran": payload["n"]}

    log, bus, runner, messages = setup({"f": handler}, SOLO, ("slow", "quick"))
    quick_arn = next(m.execution_arn for m in messages if m.execution_arn.endswith(":quick"))
    log.commits[quick_arn] = 0  # named before the slow handler looks
    # WHEN the runner runs both side by side
    assert runner.handle_batch(messages) == []
    # THEN the quick execution's result was committed while the slow task still ran
    assert seen == {"quick committed": True}
    assert all(log.commits[m.execution_arn] == 1 for m in messages)
    assert bus.sent == []


@pytest.mark.parametrize("concurrency", [10, 1])
def test_a_slow_task_does_not_hold_its_own_executions_other_results(concurrency: int) -> None:
    """A Parallel's fast branch is committed while its slow sibling still runs.

    Held until the sibling ended, its attempt would stay open in the head past its own
    ``TimeoutSeconds``, and a Retry on States.Timeout would run it a second time.
    With ``concurrency`` 1 (a stepper taking queued tasks) the tasks run one after
    another, and the fast one's result is still committed while the slow one runs.
    """
    seen: dict[str, bool] = {}
    log: CountingLog | None = None
    calls = Counter[str]()

    def fast(payload: Any) -> Any:
        calls["fast"] += 1
        return {"ran": "fast"}

    def slow(payload: Any) -> Any:
        calls["slow"] += 1
        assert log is not None
        arn = next(iter(log.commits))
        seen["fast committed"] = _wait(lambda: log.commits[arn] == 1)
        return {"ran": "slow"}

    machine = {
        "StartAt": "All",
        "States": {
            "All": {
                "Type": "Parallel",
                "Branches": [
                    {
                        "StartAt": n,
                        "States": {
                            n: {
                                "Type": "Task",
                                "Resource": FN + n,
                                "TimeoutSeconds": 5,
                                "End": True,
                            }
                        },
                    }
                    for n in ("fast", "slow")
                ],
                "End": True,
            }
        },
    }
    log, _, runner, messages = setup({"fast": fast, "slow": slow}, machine)
    runner.task_concurrency = concurrency
    runner.task_group_wait = 0.05  # the fast result may wait this long for its sibling
    log.commits[messages[0].execution_arn] = 0  # named before the slow handler looks
    # WHEN the runner runs the batch
    assert runner.handle_batch(messages) == []
    # THEN the fast result was committed while the slow task ran, then the slow one's
    assert seen == {"fast committed": True}
    record = log.get(messages[0].execution_arn)
    assert record is not None and record.status == "SUCCEEDED"
    assert log.commits[messages[0].execution_arn] == 2
    assert calls == {"fast": 1, "slow": 1}


def _wait(done: Any, seconds: float = 10.0) -> bool:
    """Poll ``done`` until it is true or ``seconds`` pass (a test's bound, not a timing)."""
    end = threading.Event()
    for _ in range(int(seconds * 100)):
        if done():
            return True
        end.wait(0.01)
    return False


def test_a_duplicate_delivery_after_the_runner_committed_runs_nothing_again() -> None:
    calls = Counter[str]()
    log, bus, runner, messages = setup({n: counting(calls, n) for n in ("a", "b", "c")})
    arn = messages[0].execution_arn
    assert runner.handle_batch(messages) == []
    # WHEN the queue delivers the three task messages again (SQS duplicates, or the runner
    # died after its commit, before the batch was acknowledged)
    assert runner.handle_batch(messages) == []
    # THEN nothing ran twice, nothing more was committed or sent
    assert calls == {"a": 1, "b": 1, "c": 1}
    assert log.commits == {arn: 1} and bus.sent == []
    assert history(log, arn).count("LambdaFunctionSucceeded") == 3


def test_a_commit_conflict_with_a_concurrent_stepper_still_commits_each_result_once() -> None:
    calls = Counter[str]()
    log, bus, runner, messages = setup({n: counting(calls, n) for n in ("a", "b", "c")})
    arn = messages[0].execution_arn
    stepper = Stepper(
        log=log,
        bus=bus,  # type: ignore[arg-type]
        definitions=lambda _arn: parse(THREE),
        clock=lambda: 1_000.0,
        invoker=task_invoker({}),
    )
    # GIVEN the runner holds a and b; c's result reaches a stepper through the queue, and
    # its commit lands between the runner's read of the head and the runner's commit
    c = messages[2]
    result = encode_event(TaskSucceeded(str(c.body["task_id"]), {"ran": "c"}))
    conflicts: list[bool] = []

    def rival() -> None:
        assert stepper.handle_batch([Message(arn, f"{c.id}#result", "event", result)]) == []
        conflicts.append(True)

    log.before.append(rival)
    # WHEN the runner's batch of a and b ends
    assert runner.handle_batch(messages[:2]) == []
    # THEN the runner lost the race once, decided again on the new head, and committed
    assert conflicts == [True]
    record = log.get(arn)
    assert record is not None and record.status == "SUCCEEDED"
    assert record.state["output"] == [{"ran": "a"}, {"ran": "b"}, {"ran": "c"}]
    assert history(log, arn).count("LambdaFunctionSucceeded") == 3
    assert calls == {"a": 1, "b": 1} and bus.sent == []
    assert log.commits == {arn: 2}  # the stepper's, then the runner's


def test_a_failed_commit_falls_back_to_the_lease_and_the_queue() -> None:
    calls = Counter[str]()
    log, bus, runner, messages = setup({n: counting(calls, n) for n in ("a", "b", "c")})
    arn = messages[0].execution_arn
    # GIVEN the runner's commit fails (the table is unreachable for a moment)
    log.fail = True
    # WHEN the batch runs
    assert runner.handle_batch(messages) == []
    log.fail = False
    # THEN each result was recorded on its lease and sent to the transition queue
    assert log.commits == {}
    results = [decode_event(m.body) for m in bus.sent]
    assert sorted(type(e).__name__ for e in results) == ["TaskSucceeded"] * 3
    for m in messages:
        lease = log.lease(arn, task_lease_key(m.body))
        assert lease is not None and lease.result is not None
    # AND a duplicate task message gets the recorded result (committed), not a second run
    assert runner.handle_batch(messages[:1]) == []
    # AND a stepper commits the sent results: the execution succeeds, each task ran once
    stepper = Stepper(
        log=log,
        bus=RecordingBus(),  # type: ignore[arg-type]
        definitions=lambda _arn: parse(THREE),
        clock=lambda: 1_000.0,
        invoker=task_invoker({}),
    )
    assert stepper.handle_batch(list(bus.sent)) == []
    record = log.get(arn)
    assert record is not None and record.status == "SUCCEEDED"
    assert calls == {"a": 1, "b": 1, "c": 1}
    assert history(log, arn).count("LambdaFunctionSucceeded") == 3


def test_a_lease_that_ran_out_before_the_commit_falls_back() -> None:
    calls = Counter[str]()
    now = [1_000.0]
    log, bus, runner, messages = setup({n: counting(calls, n) for n in ("a", "b", "c")})

    def slow(payload: Any) -> Any:  # the task outlives its lease (900 s)
        calls["slow"] += 1
        now[0] += 901
        return {"ran": "slow"}

    runner.clock = lambda: now[0]
    runner.invoker = task_invoker({"a": slow, "b": counting(calls, "b"), "c": counting(calls, "c")})
    # WHEN the batch ends after the leases ran out (another runner may run them now)
    assert runner.handle_batch(messages) == []
    # THEN the runner does not commit; the results go through the leases and the queue
    assert log.commits == {} and len(bus.sent) == 3
    assert calls == {"slow": 1, "b": 1, "c": 1}


TWO = {
    "StartAt": "First",
    "States": {
        "First": {"Type": "Task", "Resource": FN + "a", "Next": "Second"},
        "Second": {"Type": "Task", "Resource": FN + "b", "End": True},
    },
}


def test_a_redelivery_after_a_commit_whose_outbox_was_not_sent_sends_it() -> None:
    calls = Counter[str]()
    log, bus, runner, messages = setup({n: counting(calls, n) for n in ("a", "b")}, TWO)
    (first,) = messages
    tasks = runner.tasks_bus
    assert isinstance(tasks, RecordingBus)
    tasks.sent.clear()
    # GIVEN the runner committed First's result, then could send nothing (as if it died
    # before its send: the task message is not acknowledged); with 30 s left, too little
    # to run Second in place (in_place.py), it had to send it
    tasks.down = bus.down = True
    failures = runner.handle_batch([first], None, lambda: 30.0)
    assert [m.id for m, _ in failures] == [first.id]
    assert log.commits == {first.execution_arn: 1} and tasks.sent == []
    record = log.get(first.execution_arn)
    assert record is not None and [m.kind for m in record.outbox] == ["task"]  # pending
    # AND the landed commit did not fall back: no result recorded on the lease
    lease = log.lease(first.execution_arn, task_lease_key(first.body))
    assert lease is not None and lease.result is None
    # WHEN the queue delivers the task message again
    tasks.down = bus.down = False
    assert runner.handle_batch([first], None, lambda: 30.0) == []
    # THEN First does not run again, and the pending outbox (Second's task) is sent
    assert calls == {"a": 1}
    sent = [x for m in tasks.sent for x in (group_members(m) or [m])]
    assert [m.body["resource"] for m in sent] == [FN + "b"] and len(tasks.sent) == 1
    record = log.get(first.execution_arn)
    assert record is not None and record.outbox == ()
