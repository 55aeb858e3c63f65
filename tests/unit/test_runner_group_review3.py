"""Review 3 of the group claim (issue 18 round 3): its findings, each reproduced and counted.

1. a group message is sized as SQS counts it (escaped JSON, signed, with attributes):
   non-ASCII tasks never make a group SQS refuses, and the buses refuse what SQS would;
2. a deferred member is sent on its own BEFORE it is listed done: a failed hand-off
   loses nothing (the group comes back and runs it);
3. a member the group lease cannot cover does not start: it is handed off (review 6)
   and runs once, not twice beside the runner that took the lease over.
"""

from __future__ import annotations

import copy
import threading
from collections import Counter
from typing import Any

import pytest
from stepflow.asl import parse
from stepflow.aws.sqs_bus import SQSBus, encode_message
from stepflow.runtime import InMemoryBus, InMemoryLog, Message, Stepper
from stepflow.runtime.outcome import TaskDeferredError
from stepflow.runtime.payloads import InMemoryPayloadStore
from stepflow.runtime.runner_commit import MAX_TASK_THREADS
from stepflow.runtime.signing import KeyRing, MessageSigner, SigningKey
from stepflow.runtime.task_groups import group_members, group_tasks
from stepflow.runtime.task_runs import TaskLeaseHeldError
from stepflow.runtime.wire import MAX_MESSAGE_BYTES, MessageTooLargeError, check_wire, wire_size
from stepflow.testing.handlers import task_invoker

from tests.unit.test_runner_batch import SM, THREE, RecordingBus, counting, setup

ARN = "arn:aws:states:us-east-1:123456789012:execution:Orders:o-1"
SIGNER = MessageSigner(KeyRing(SigningKey("v1", b"k" * 32)))
GROUP_KEY = "tasks#1#0"


def _tasks(text: str, n: int) -> list[Message]:
    body = {"resource": "arn:aws:lambda:us-east-1:1:function:f", "input": {"note": text}}
    return [Message(ARN, f"{ARN}#7#{i}", "task", {"task_id": f"t{i}", **body}) for i in range(n)]


def _on_the_wire(message: Message) -> int:
    return wire_size(encode_message(message, SIGNER), message)


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("é" * 4_500, 10),  # 9 KB of UTF-8 each, 27 KB escaped: ten were 272 KB
        ("中" * 5_000, 10),
        ("\U0001f600" * 12_000, 4),  # an emoji: 4 bytes of UTF-8, 12 escaped
        ("é" * 40_000, 2),  # each fits alone, two do not
        ("x" * 19_900, 10),
    ],
)
def test_every_group_of_non_ascii_tasks_fits_in_an_sqs_message(text: str, n: int) -> None:
    tasks = _tasks(text, n)
    sent = group_tasks(tasks)
    # THEN every message fits as SQS counts it, and every task travels exactly once
    assert all(_on_the_wire(m) <= MAX_MESSAGE_BYTES for m in sent)
    ids = [x.id for m in sent for x in (group_members(m) or [m])]
    assert sorted(ids) == sorted(t.id for t in tasks)


def test_a_task_too_big_alone_travels_alone_as_on_main() -> None:
    big, small = _tasks("é" * 140_000, 1)[0], _tasks("x", 3)[1:]  # 280 KB of UTF-8
    sent = group_tasks([big, *small])
    # the big one keeps the old single shape (SQS refuses it, as it did before groups)
    assert sent[0] == big and _on_the_wire(big) > MAX_MESSAGE_BYTES
    assert [len(group_members(m) or [m]) for m in sent[1:]] == [2]


def test_the_sqs_bus_offloads_a_message_sqs_would_refuse() -> None:
    (big,) = _tasks("é" * 140_000, 1)  # 280 KB of UTF-8 (written as is since review 6)
    with pytest.raises(MessageTooLargeError):
        check_wire(SIGNER.sign(big), big)

    class Client:  # moto takes 1 MiB: keep the bodies to measure them
        bodies: list[str] = []

        def send_message(self, **kwargs: Any) -> None:
            Client.bodies.append(kwargs["MessageBody"])

        def send_message_batch(self, **kwargs: Any) -> dict[str, Any]:
            Client.bodies.extend(e["MessageBody"] for e in kwargs["Entries"])
            return {}

    # without a payload store the bus refuses it (issue 18 round 3 only warned, and sent)
    with pytest.raises(MessageTooLargeError, match="no payload store"):
        SQSBus("https://queue", signer=SIGNER, client=Client()).send(big)
    assert Client.bodies == []
    store = InMemoryPayloadStore()
    sqs = SQSBus("https://queue", signer=SIGNER, client=Client(), payloads=store)
    sqs.send(big)
    sqs.send_batch([(big, 0)])
    assert sqs.offloaded == 2 and len(store.objects) == 1  # the same bytes, the same object
    assert all(wire_size(b, big) < 1_000 for b in Client.bodies)
    sqs.send(_tasks("é" * 120_000, 1)[0])  # 240 KB on the wire: fits
    sqs.send(_tasks("é" * 50_000, 1)[0])  # 100 KB: over while 'é' was escaped (300 KB)
    assert sqs.offloaded == 2 and len(Client.bodies) == 4


def test_a_parallel_of_non_ascii_inputs_starts_and_runs_through_the_in_memory_buses() -> None:
    # GIVEN three branches whose input is 50,000 'é' (100 KB of UTF-8 each): one group
    # of 300 KB, which SQS refuses (review 3 measured 15,000, escaped to 90 KB each)
    log, bus, tasks_bus = InMemoryLog(), InMemoryBus(), InMemoryBus()
    calls = Counter[str]()
    stepper = Stepper(
        log=log,
        bus=bus,
        definitions=lambda _arn: parse(THREE),
        clock=lambda: 1_000.0,
        invoker=task_invoker({n: counting(calls, n) for n in "abc"}),
        inline_tasks=False,
        tasks_bus=tasks_bus,
        task_concurrency=10,
    )
    stepper.start_execution(state_machine_arn=SM, name="x", input={"n": "é" * 50_000}, seed=1)
    messages = tasks_bus.receive_batch(10)
    assert [len(group_members(m) or [m]) for m in messages] == [2, 1]
    assert all(_on_the_wire(m) <= MAX_MESSAGE_BYTES for m in messages)
    # THEN the runner runs each task once and the execution ends
    assert stepper.handle_batch(messages) == []
    assert calls == {"a": 1, "b": 1, "c": 1}
    arn = messages[0].execution_arn
    record = log.get(arn)
    assert record is not None and record.status == "SUCCEEDED"


def test_a_deferred_member_whose_hand_off_send_fails_is_not_lost() -> None:
    calls = Counter[str]()
    log, _bus, runner, messages = setup({n: counting(calls, n) for n in "abc"}, grouped=True)
    bus = runner.tasks_bus  # hand-offs go to the runner's queue (review 36)
    assert isinstance(bus, RecordingBus)
    (group,) = messages
    arn = group.execution_arn
    inner = task_invoker({n: counting(calls, n) for n in "abc"})

    def invoker(body: dict[str, Any]) -> Any:
        if body.get("task_id") == "t4" and calls["deferred"] == 0:
            calls["deferred"] += 1  # e.g. its cell's breaker is open
            raise TaskDeferredError("circuit open", 30)
        return inner(body)

    runner.invoker = invoker
    now = [1_000.0]
    runner.clock = lambda: now[0]
    # WHEN the hand-off's send fails (the queue is unreachable)
    bus.down = True
    failures = runner.handle_batch([group])
    bus.down = False
    # THEN the group message fails (it comes back) and t4 is not listed done
    assert [m.id for m, _ in failures] == [group.id]
    lease = log.lease(arn, GROUP_KEY)
    assert lease is None or "t4" not in ((lease.result or {}).get("done") or {})
    # AND its redelivery runs t4, once; b and c ran once
    now[0] += 961
    assert runner.handle_batch([group]) == []
    assert calls == {"deferred": 1, "a": 1, "b": 1, "c": 1}
    record = log.get(arn)
    assert record is not None and record.status == "SUCCEEDED"


def test_a_deferred_member_is_sent_on_its_own_then_listed_done() -> None:
    calls = Counter[str]()
    log, _bus, runner, messages = setup({n: counting(calls, n) for n in "abc"}, grouped=True)
    bus = runner.tasks_bus  # hand-offs go to the runner's queue (review 36)
    assert isinstance(bus, RecordingBus)
    (group,) = messages
    arn = group.execution_arn
    order: list[str] = []
    send, put = bus.send, log.put_lease

    def sent(message: Message, delay_seconds: int = 0) -> None:
        order.append("send " + str(message.body.get("task_id")))
        send(message, delay_seconds)

    def written(lease: Any) -> None:
        put(lease)
        order.append("record " + ",".join(sorted((lease.result or {}).get("done") or {})))

    bus.send = sent  # type: ignore[method-assign]
    log.put_lease = written  # type: ignore[method-assign]
    inner = task_invoker({n: counting(calls, n) for n in "abc"})

    def invoker(body: dict[str, Any]) -> Any:
        if body.get("task_id") == "t4":
            raise TaskDeferredError("circuit open", 30)
        return inner(body)

    runner.invoker = invoker
    assert runner.handle_batch([group]) == []
    assert order.index("send t4") < order.index("record t4")  # sent, THEN listed done
    alone = [m.id for m in bus.sent if m.kind == "task" and "group" not in m.body]
    assert alone == [group_members(group)[0].id]  # type: ignore[index]
    lease = log.lease(arn, GROUP_KEY)
    assert lease is not None and lease.result is not None and "t4" in lease.result["done"]


def test_a_member_the_group_lease_cannot_cover_is_handed_off_and_runs_once() -> None:
    calls = Counter[str]()
    now = [1_000.0]
    log, _bus, runner, messages = setup({}, grouped=True)
    bus = runner.tasks_bus  # hand-offs go to the runner's queue (review 36)
    assert isinstance(bus, RecordingBus)
    (group,) = messages
    arn = group.execution_arn

    def slow(payload: Any) -> Any:  # within the lease (900 s), but b and c cannot start after
        calls["a"] += 1
        now[0] += 700
        return {"ran": "a"}

    runner.invoker = task_invoker({"a": slow, "b": counting(calls, "b"), "c": counting(calls, "c")})
    runner.clock = lambda: now[0]
    runner.task_concurrency = 1  # members one after the other
    bus.sent.clear()
    # THEN a ran; b and c did not start: handed off on their own, the group acknowledged
    assert runner.handle_batch([group]) == []
    assert calls == {"a": 1}
    alone = [m for m in bus.sent if m.kind == "task"]
    assert sorted(m.id for m in alone) == sorted(m.id for m in group_members(group)[1:])  # type: ignore[index]
    lease = log.lease(arn, GROUP_KEY)
    assert lease is not None and lease.result == {"done": {"t5": None, "t6": None}}
    # WHEN they are delivered, and the group again (a duplicate): b and c run once each
    assert runner.handle_batch(alone) == []
    assert runner.handle_batch([group]) == []
    assert runner.handle_batch(alone) == []
    assert calls == {"a": 1, "b": 1, "c": 1}
    record = log.get(arn)
    assert record is not None and record.status == "SUCCEEDED"


def test_a_member_is_not_started_beside_the_runner_that_took_the_lease_over() -> None:
    # review 3's reproduction: a's handler outlives the lease, a second runner takes the
    # redelivery meanwhile and runs the group; the first runner must not start b and c
    calls = Counter[str]()
    now = [1_000.0]
    log, _bus, runner, messages = setup({}, grouped=True)
    (group,) = messages
    second: list[Stepper] = []

    def slow(payload: Any) -> Any:
        calls["a"] += 1
        if calls["a"] == 1:
            now[0] += 901  # the group lease (900 s) runs out
            assert second[0].handle_batch([group]) == []
        return {"ran": "a"}

    runner.invoker = task_invoker({"a": slow, "b": counting(calls, "b"), "c": counting(calls, "c")})
    runner.clock = lambda: now[0]
    runner.task_concurrency = 1
    other = copy.copy(runner)
    other.task_concurrency = 10
    other.owner = "runner-2"
    second.append(other)
    failures = runner.handle_batch([group])
    assert [type(e) for _, e in failures] == [TaskLeaseHeldError]
    # b and c ran once (the second runner's); a twice: its handler outlived its lease,
    # as a single task's does (test_a_groups_lease_that_runs_out_while_a_slow_task_runs)
    assert calls == {"a": 2, "b": 1, "c": 1}
    record = log.get(group.execution_arn)
    assert record is not None and record.status == "SUCCEEDED"


def test_a_runner_invocation_runs_at_most_max_task_threads_tasks_side_by_side() -> None:
    names = tuple(f"x{i}" for i in range(12))  # twelve groups of three: 36 tasks
    log, _bus, runner, messages = setup({}, grouped=True, names=names)
    calls = Counter[str]()
    state = {"active": 0, "most": 0}
    changed = threading.Condition()

    def handler(payload: Any) -> Any:
        with changed:
            calls[str(payload["n"])] += 1
            state["active"] += 1
            state["most"] = max(state["most"], state["active"])
            changed.notify_all()
            # wait (bounded) for more to start beside it: over the cap only without one
            changed.wait_for(lambda: state["active"] > MAX_TASK_THREADS, timeout=0.5)
            state["active"] -= 1
        return {"ran": True}

    runner.invoker = task_invoker({n: handler for n in "abc"})
    assert runner.handle_batch(messages) == []
    assert state["most"] <= MAX_TASK_THREADS
    assert calls == {name: 3 for name in names}  # each task once
    assert all(log.get(m.execution_arn).status == "SUCCEEDED" for m in messages)  # type: ignore[union-attr]
