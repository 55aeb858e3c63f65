"""The runner runs the tasks its own commit schedules in place (runtime/in_place.py).

First (task a) -> Both (a Parallel of b and c): the runner that ran a gets b and c back
from its commit and runs them in the same invocation instead of sending them to the
tasks queue. Counted: each handler's calls, the task messages sent, the lease records.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from stepflow.runtime import InMemoryLog, Message, Stepper
from stepflow.runtime.in_place import MAX_ROUNDS
from stepflow.runtime.repair import repair_message
from stepflow.runtime.task_groups import group_members

from tests.unit.test_runner_batch import FN, CountingLog, RecordingBus, setup
from tests.unit.test_runner_group import Crash, lease_writes


def _chain(timeout: int | None = None) -> dict[str, Any]:
    def task(name: str) -> dict[str, Any]:
        extra = {"TimeoutSeconds": timeout} if timeout else {}
        return {"Type": "Task", "Resource": FN + name, "End": True, **extra}

    return {
        "StartAt": "First",
        "States": {
            "First": {"Type": "Task", "Resource": FN + "a", "Next": "Both"},
            "Both": {
                "Type": "Parallel",
                "End": True,
                "Branches": [{"StartAt": n, "States": {n: task(n)}} for n in "bc"],
            },
        },
    }


def _counting(calls: Counter[str], block: dict[str, threading.Event] | None = None) -> Any:
    def handler(name: str) -> Any:
        def run(payload: Any) -> Any:
            calls[name] += 1
            if block and name in block and calls[name] == 1:
                block[name].wait(10)
            return {"ran": name}

        return run

    return {n: handler(n) for n in "abc"}


def _tasks(runner: Stepper) -> RecordingBus:
    tasks = runner.tasks_bus
    assert isinstance(tasks, RecordingBus)
    return tasks


def _until(check: Any, what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_the_next_tasks_run_in_place_once_with_nothing_sent() -> None:
    calls = Counter[str]()
    log, bus, runner, (first,) = setup(_counting(calls), _chain())
    writes = lease_writes(log)
    _tasks(runner).sent.clear()
    assert runner.handle_batch([first]) == []
    assert calls == {"a": 1, "b": 1, "c": 1}
    assert _tasks(runner).sent == [] and bus.sent == []  # no hop through a queue
    assert len(writes) == 2  # a's lease, then one for the Parallel's group
    assert log.commits == {first.execution_arn: 2}
    head = log.get(first.execution_arn)
    assert head is not None and head.status == "SUCCEEDED" and head.outbox == ()


def test_a_resend_while_they_run_in_place_meets_the_same_lease() -> None:
    """A repair message re-sends the held outbox: same group, same lease key, not run twice."""
    calls = Counter[str]()
    release = {"b": threading.Event()}
    log, _bus, runner, (first,) = setup(_counting(calls, release), _chain())
    tasks = _tasks(runner)
    tasks.sent.clear()
    arn = first.execution_arn
    worker = threading.Thread(target=runner.handle_batch, args=([first],))
    worker.start()
    try:
        _until(lambda: calls["b"] == 1, "b never started in place")
        head = log.get(arn)
        assert head is not None and len(head.outbox) == 2  # held: pending, not cleared
        runner.handle_batch([repair_message(arn)])  # re-sends the pending outbox
        (group,) = tasks.sent
        failures = runner.handle_batch([group])  # another runner: the lease is live
        assert [m.id for m, _ in failures] == [group.id]
    finally:
        release["b"].set()
        worker.join(10)
    assert calls == {"a": 1, "b": 1, "c": 1}
    head = log.get(arn)
    assert head is not None and head.status == "SUCCEEDED"


def test_a_partial_commit_keeps_the_whole_held_group_in_the_outbox() -> None:
    """b's result is committed while c runs: the outbox keeps b and c (one lease key)."""
    calls = Counter[str]()
    release = {"c": threading.Event()}
    log, _bus, runner, (first,) = setup(_counting(calls, release), _chain())
    runner.task_group_wait = 0.05  # b's result does not wait for c's
    tasks = _tasks(runner)
    tasks.sent.clear()
    arn = first.execution_arn
    worker = threading.Thread(target=runner.handle_batch, args=([first],))
    worker.start()
    try:
        _until(lambda: log.commits[arn] == 2, "b's result was never committed")
        head = log.get(arn)
        assert head is not None and len(head.outbox) == 2, head.outbox
        runner.handle_batch([repair_message(arn)])
        (group,) = tasks.sent  # b and c again: the key of the group c runs under
        assert len(group.body["group"]) == 2
        assert [m.id for m, _ in runner.handle_batch([group])] == [group.id]
    finally:
        release["c"].set()
        worker.join(10)
    assert calls == {"a": 1, "b": 1, "c": 1}
    head = log.get(arn)
    assert head is not None and head.status == "SUCCEEDED"


def test_a_runner_that_dies_in_place_leaves_them_to_the_redelivery() -> None:
    calls = Counter[str]()
    now = [1_000.0]
    handlers = _counting(calls)

    def dies_once(payload: Any) -> Any:
        calls["c"] += 1
        if calls["c"] == 1:
            _until(lambda: calls["b"] == 1, "b never ran")  # b ends first
            time.sleep(0.05)
            raise Crash("the runner's process dies while c runs in place")
        return {"ran": "c"}

    handlers["c"] = dies_once
    log, _bus, runner, (first,) = setup(handlers, _chain())
    runner.clock = lambda: now[0]
    _tasks(runner).sent.clear()
    try:
        runner.handle_batch([first])
        raise AssertionError("the crash did not happen")
    except Crash:
        pass
    head = log.get(first.execution_arn)
    assert head is not None and len(head.outbox) == 2  # b and c: pending, their only copy
    # the queue hands a's message out again, after the group's lease ran out
    now[0] += runner.task_lease_seconds + 1
    assert runner.handle_batch([first]) == []
    # b's result was committed as the crash unwound; c runs again, after the lease ran out
    assert calls == {"a": 1, "b": 1, "c": 2}
    head = log.get(first.execution_arn)
    assert head is not None and head.status == "SUCCEEDED"


def test_a_lone_task_runs_in_place_only_if_the_time_left_covers_its_timeout() -> None:
    two = {
        "StartAt": "First",
        "States": {
            "First": {"Type": "Task", "Resource": FN + "a", "Next": "Second"},
            "Second": {"Type": "Task", "Resource": FN + "b", "End": True},
        },
    }
    for timeout, left, in_place in ((None, 800.0, False), (60, 800.0, True), (60, 100.0, False)):
        machine = {**two, "States": {**two["States"]}}
        if timeout:
            machine["States"]["Second"] = {**two["States"]["Second"], "TimeoutSeconds": timeout}
        calls = Counter[str]()
        _log, bus, runner, (first,) = setup(_counting(calls), machine)
        _tasks(runner).sent.clear()
        bus.sent.clear()
        assert runner.handle_batch([first], None, lambda left=left: left) == []
        sent: list[Message] = _tasks(runner).sent
        assert (calls["b"], len(sent)) == ((1, 0) if in_place else (0, 1)), (timeout, left)
        # the timeout's timer: sent once, not again when b's commit re-sends the held outbox
        timers = [m for m in bus.sent if m.body.get("type") == "TimerFired"]
        assert len(timers) == (1 if timeout else 0), (timeout, left)


def test_a_long_chain_runs_a_bounded_number_of_rounds_then_sends_the_rest() -> None:
    count = MAX_ROUNDS + 5
    names = [f"t{i}" for i in range(count)]
    machine = {
        "StartAt": names[0],
        "States": {
            n: {
                "Type": "Task",
                "Resource": FN + n,
                **({"Next": names[i + 1]} if i + 1 < count else {"End": True}),
            }
            for i, n in enumerate(names)
        },
    }
    calls = Counter[str]()

    def handler(name: str) -> Any:
        def run(payload: Any) -> Any:
            calls[name] += 1
            return {}

        return run

    log, _bus, runner, (first,) = setup({n: handler(n) for n in names}, machine)
    tasks = _tasks(runner)
    tasks.sent.clear()
    assert runner.handle_batch([first]) == []
    assert sum(calls.values()) == MAX_ROUNDS + 1 and set(calls.values()) == {1}
    (rest,) = tasks.sent  # the next task, sent; the outbox cleared after the send
    head = log.get(first.execution_arn)
    assert head is not None and head.status == "RUNNING" and head.outbox == ()
    queue = [rest]
    while queue:
        sent = len(tasks.sent)
        assert runner.handle_batch([queue.pop()]) == []
        queue.extend(tasks.sent[sent:])
    assert sum(calls.values()) == count and set(calls.values()) == {1}
    assert isinstance(log, CountingLog)


def test_a_task_is_not_held_while_a_sibling_still_runs() -> None:
    """a1 -> a2 (TimeoutSeconds 60) beside a slow s: a2 is sent, not kept waiting for s.

    Held, it would start only after s (a round's end), while its timeout's timer, sent
    with the commit, runs: review 4 saw it time out without ever starting.
    """
    calls = Counter[str]()
    release = threading.Event()

    def handler(name: str) -> Any:
        def run(payload: Any) -> Any:
            calls[name] += 1
            if name == "s":
                release.wait(10)
            return {"ran": name}

        return run

    def task(name: str, **extra: Any) -> dict[str, Any]:
        return {"Type": "Task", "Resource": FN + name, **extra}

    machine = {
        "StartAt": "F",
        "States": {
            "F": task("f", Next="P"),
            "P": {
                "Type": "Parallel",
                "End": True,
                "Branches": [
                    {"StartAt": "s", "States": {"s": task("s", End=True)}},
                    {
                        "StartAt": "a1",
                        "States": {
                            "a1": task("a1", Next="a2"),
                            "a2": task("a2", TimeoutSeconds=60, End=True),
                        },
                    },
                ],
            },
        },
    }
    log, _bus, runner, (first,) = setup({n: handler(n) for n in ("f", "s", "a1", "a2")}, machine)
    runner.task_group_wait = 0.05
    tasks = _tasks(runner)
    tasks.sent.clear()
    worker = threading.Thread(target=runner.handle_batch, args=([first], None, lambda: 900.0))
    worker.start()
    try:
        # a2 is sent (with the held s and a1, re-sent as their group: same lease key)
        def alone() -> list[Message]:  # a2's group of one (the held s and a1 are a group of two)
            return [m for m in tasks.sent if len(group_members(m) or [m]) == 1]

        _until(lambda: bool(alone()), "a2 was not sent")
        (a2,) = [x for m in alone() for x in (group_members(m) or [m])]
        assert a2.body["resource"] == FN + "a2"
        for message in list(tasks.sent):  # another runner, at once: a2 runs, s is busy
            runner.handle_batch([message], None, lambda: 900.0)
        assert calls["a2"] == 1 and calls["s"] == 1
    finally:
        release.set()
        worker.join(10)
    assert calls == {"f": 1, "s": 1, "a1": 1, "a2": 1}
    head = log.get(first.execution_arn)
    assert head is not None and head.status == "SUCCEEDED"


def test_map_items_the_time_left_does_not_cover_are_sent_as_groups() -> None:
    """A Map of 11 without TimeoutSeconds, 200 s left: nothing held (no 11th alone in place)."""
    calls = Counter[str]()
    machine = {
        "StartAt": "F",
        "States": {
            "F": {"Type": "Task", "Resource": FN + "a", "Next": "M"},
            "M": {
                "Type": "Map",
                "End": True,
                "ItemsPath": "$.items",
                "ItemProcessor": {
                    "StartAt": "B",
                    "States": {"B": {"Type": "Task", "Resource": FN + "b", "End": True}},
                },
            },
        },
    }

    def items(payload: Any) -> Any:
        calls["a"] += 1
        return {"items": list(range(11))}

    def item(payload: Any) -> Any:
        calls["b"] += 1
        return payload

    _log, _bus, runner, (first,) = setup({"a": items, "b": item}, machine)
    tasks = _tasks(runner)
    tasks.sent.clear()
    assert runner.handle_batch([first], None, lambda: 200.0) == []
    assert calls == {"a": 1}  # nothing ran in place
    assert sorted(len(m.body.get("group", [m])) for m in tasks.sent) == [1, 10]


def test_out_of_time_the_held_tasks_are_sent_and_the_outbox_cleared() -> None:
    calls = Counter[str]()
    log, _bus, runner, (first,) = setup(_counting(calls), _chain())
    tasks = _tasks(runner)
    tasks.sent.clear()
    asked = Counter[str]()

    def has_time() -> bool:  # time for a's round, none for the next
        asked["n"] += 1
        return calls["a"] == 0 or log.commits[first.execution_arn] == 0

    assert runner.handle_batch([first], has_time) == []
    assert calls == {"a": 1} and asked["n"] > 0
    (group,) = tasks.sent
    assert len(group.body["group"]) == 2
    head = log.get(first.execution_arn)
    assert head is not None and head.outbox == ()  # sent, then cleared: no repair needed


def test_a_task_whose_resend_failed_keeps_its_outbox_when_time_runs_out() -> None:
    """c fails to run in place and its re-send fails; then, out of time, d (held beside it)
    is sent: the outbox, c's only copy, is not cleared (review 5, a lost task)."""
    calls = Counter[str]()

    def handler(name: str) -> Any:
        def run(payload: Any) -> Any:
            calls[name] += 1
            if name == "b":
                time.sleep(0.2)
            return {"ran": name}

        return run

    def branch(names: list[str]) -> dict[str, Any]:
        states = {
            n: {
                "Type": "Task",
                "Resource": FN + n,
                **({"Next": names[i + 1]} if i + 1 < len(names) else {"End": True}),
            }
            for i, n in enumerate(names)
        }
        return {"StartAt": names[0], "States": states}

    machine = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Task", "Resource": FN + "a", "Next": "P"},
            "P": {"Type": "Parallel", "End": True, "Branches": [branch(["b", "d"]), branch(["c"])]},
        },
    }
    log, _bus, runner, (first,) = setup({n: handler(n) for n in "abcd"}, machine)
    tasks = _tasks(runner)
    tasks.sent.clear()
    inner = runner.invoker

    def invoker(body: Any) -> Any:
        if str(body["resource"]).endswith(":c"):
            calls["c-raised"] += 1
            raise RuntimeError("lambda:Invoke throttled")
        return inner(body)

    runner.invoker = invoker
    send = tasks.send

    def refusing(message: Message, delay_seconds: int = 0) -> None:
        if "group" in message.body:
            raise ConnectionError("SQS throttled")
        send(message, delay_seconds)

    tasks.send = refusing  # type: ignore[method-assign]

    def has_time() -> bool:  # out of time once c has failed
        return not calls["c-raised"] or threading.current_thread() is not threading.main_thread()

    assert runner.handle_batch([first], has_time) == []
    head = log.get(first.execution_arn)
    assert head is not None and head.status == "RUNNING"
    # c's copy is still there for the repair (before the fix: cleared, c lost for good)
    assert [m for m in head.outbox if str(m.body.get("resource")).endswith(":c")], head.outbox


def test_a_group_running_in_place_is_sent_again_at_most_once() -> None:
    """A Map of 10 (b -> c) held in place: b0 ends first and commits while its siblings
    run, so c0 is sent, with the group of b's once more (its outbox is then cleared: no
    later commit sends it again; reviews 5 and 6 counted 9 copies in two designs)."""
    calls = Counter[str]()
    log, runner, first = _map_of_b_then_c(calls, 10, lambda i: 0.03 * i)
    runner.task_group_wait = 0.01
    tasks = _tasks(runner)
    tasks.sent.clear()
    assert runner.handle_batch([first]) == []
    assert calls["a"] == 1 and calls["b"] == 10
    copies = [m for m in tasks.sent if len(m.body.get("group", [])) == 10]
    assert len(copies) <= 1, [m.id for m in tasks.sent]
    queue = list(tasks.sent)
    while queue:  # another runner runs what was sent
        sent = len(tasks.sent)
        assert runner.handle_batch([queue.pop(0)]) == []
        queue.extend(tasks.sent[sent:])
    assert calls == {"a": 1, "b": 10, "c": 10}
    head = log.get(first.execution_arn)
    assert head is not None and head.status == "SUCCEEDED"


def test_no_more_tasks_are_held_than_a_round_runs_side_by_side() -> None:
    """With one task at a time, a Parallel's two are not held (the second would wait)."""
    calls = Counter[str]()
    log, _bus, runner, (first,) = setup(_counting(calls), _chain())
    runner.task_concurrency = 1
    tasks = _tasks(runner)
    tasks.sent.clear()
    assert runner.handle_batch([first]) == []
    assert calls == {"a": 1}
    (group,) = tasks.sent
    assert len(group.body["group"]) == 2
    assert isinstance(log, CountingLog)


def test_a_held_outboxs_timer_whose_send_failed_is_not_cleared_out_of_time() -> None:
    """a -> b (TimeoutSeconds 100): b is held and its timer's send fails twice; then the
    invocation is out of time: b is sent but the outbox, the timer's only copy, stays."""
    calls = Counter[str]()
    machine = {
        "StartAt": "a",
        "States": {
            "a": {"Type": "Task", "Resource": FN + "a", "Next": "b"},
            "b": {"Type": "Task", "Resource": FN + "b", "TimeoutSeconds": 100, "End": True},
        },
    }
    log, bus, runner, (first,) = setup(_counting(calls), machine)
    _tasks(runner).sent.clear()
    failed = Counter[str]()
    send = bus.send

    def throttled(message: Message, delay_seconds: int = 0) -> None:
        if message.body.get("type") == "TimerFired" and failed["timer"] < 2:
            failed["timer"] += 1
            raise ConnectionError("SQS throttled")
        send(message, delay_seconds)

    bus.send = throttled  # type: ignore[method-assign]
    runner.handle_batch([first], lambda: failed["timer"] < 2)
    assert failed["timer"] == 2
    head = log.get(first.execution_arn)
    assert head is not None
    timers = [m for m in head.outbox if m.body.get("type") == "TimerFired"]
    sent = [m for m in bus.sent if m.body.get("type") == "TimerFired"]
    assert timers or sent, "the timeout's timer was lost"


def test_another_runner_committing_beside_a_held_group_sends_it_at_most_once() -> None:
    """R1 runs a Map's b's in place; R2 takes each c as it is sent and commits it: R2's
    commits must not put the group R1 runs back on the queue each time (review 6: 9)."""
    calls = Counter[str]()
    log, r1, first = _map_of_b_then_c(calls, 6, lambda i: 0.08 * i + 0.02)
    bus = r1.bus
    tasks = _tasks(r1)
    tasks.sent.clear()
    r1.task_group_wait = 0.01
    r2 = Stepper(
        log=log,
        bus=bus,  # type: ignore[arg-type]
        definitions=r1.definitions,
        clock=r1.clock,
        invoker=r1.invoker,
        inline_tasks=False,
        tasks_bus=tasks,  # type: ignore[arg-type]
        task_concurrency=10,
    )
    r2.task_group_wait = 0.01
    done = threading.Event()
    taken = [0]

    def other_runner() -> None:
        while not done.is_set() or taken[0] < len(tasks.sent):
            if taken[0] < len(tasks.sent):
                message = tasks.sent[taken[0]]
                taken[0] += 1
                if "group" not in message.body:  # the c's; a group copy would be busy
                    r2.handle_batch([message])
            else:
                time.sleep(0.002)

    worker = threading.Thread(target=other_runner)
    worker.start()
    try:
        assert r1.handle_batch([first]) == []
    finally:
        done.set()
        worker.join(10)
    copies = [m for m in tasks.sent if len(m.body.get("group", [])) == 6]
    assert len(copies) <= 1, [m.id for m in tasks.sent]
    assert calls["b"] == 6 and calls["c"] <= 6


def _map_of_b_then_c(
    calls: Counter[str], items: int, seconds: Any
) -> tuple[InMemoryLog, Stepper, Message]:
    """a -> a Map of ``items`` (b, taking ``seconds(i)``, then c): the log, runner, a's message."""

    def a(payload: Any) -> Any:
        calls["a"] += 1
        return {"items": list(range(items))}

    def b(payload: Any) -> Any:
        calls["b"] += 1
        time.sleep(seconds(payload))
        return payload

    def c(payload: Any) -> Any:
        calls["c"] += 1
        return payload

    def task(name: str, **extra: Any) -> dict[str, Any]:
        return {"Type": "Task", "Resource": FN + name, **extra}

    b_then_c = {"StartAt": "b", "States": {"b": task("b", Next="c"), "c": task("c", End=True)}}
    machine = {
        "StartAt": "a",
        "States": {
            "a": task("a", Next="M"),
            "M": {"Type": "Map", "ItemsPath": "$.items", "End": True, "ItemProcessor": b_then_c},
        },
    }
    log, _bus, runner, (first,) = setup({"a": a, "b": b, "c": c}, machine)
    return log, runner, first


class _BatchingBus(RecordingBus):
    """A tasks bus with ``send_batch`` (as SQS has): its requests counted."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = Counter[str]()

    def send(self, message: Message, delay_seconds: int = 0) -> None:
        self.requests["send"] += 1
        super().send(message, delay_seconds)

    def send_batch(self, messages: list[tuple[Message, int]]) -> None:
        self.requests["send_batch"] += 1
        for message, delay in messages:
            super().send(message, delay)


def test_a_map_held_past_its_time_is_sent_in_one_batch_request() -> None:
    """A Map of 12 held in place, then out of time: its two groups (10 and 2) go out in
    one send_batch request (SendMessageBatch on SQS), not one send each."""
    calls = Counter[str]()
    log, runner, first = _map_of_b_then_c(calls, 12, lambda _i: 0)
    tasks = _BatchingBus()
    runner.tasks_bus = tasks  # type: ignore[assignment]

    def has_time() -> bool:  # time for a's round, none for the next
        return log.commits[first.execution_arn] == 0

    assert runner.handle_batch([first], has_time) == []
    assert calls == {"a": 1}
    assert sorted(len(m.body["group"]) for m in tasks.sent) == [2, 10]
    assert tasks.requests == {"send_batch": 1}
    head = log.get(first.execution_arn)
    assert head is not None and head.outbox == ()  # sent, then cleared
