"""Review 6 of the group claim (issue 18 round 3): members that cannot start now.

A. a member the group lease does not cover (no ``TimeoutSeconds`` past the claim's
   first minute, or one that waited for a thread) is handed off on its own message:
   the group message is acknowledged, never failed (each failure burns one of the
   tasks queue's five receives, and a Parallel of six ended in the DLQ);
B. a member the runner invocation's time left does not cover (the Lambda is killed at
   its deadline, and the cut member ran again after the lease) is handed off too,
   on the Lambda path (``respond`` passes the context's time left down).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pytest
from stepflow.asl import parse
from stepflow.aws import stepper_lambda
from stepflow.aws.sqs_bus import SQSBus, decode_message, encode_message
from stepflow.runtime import InMemoryBus, InMemoryLog, Message, Stepper
from stepflow.runtime.map_express import REARM_BYTES, _rearmed
from stepflow.runtime.signing import KeyRing, MessageSigner, SigningKey
from stepflow.runtime.wire import MAX_MESSAGE_BYTES, encode_wire, wire_size
from stepflow.testing.handlers import task_invoker

from tests.unit.test_runner_batch import FN, SM, RecordingBus, setup

ARN = "arn:aws:states:us-east-1:123456789012:execution:Orders:o-1"
SIGNER = MessageSigner(KeyRing(SigningKey("v1", b"k" * 32)))


def _parallel(names: str, timeout: int | None = None) -> dict[str, Any]:
    def task(name: str) -> dict[str, Any]:
        extra = {"TimeoutSeconds": timeout} if timeout else {}
        return {"Type": "Task", "Resource": FN + name, "End": True, **extra}

    branches = [{"StartAt": n, "States": {n: task(n)}} for n in names]
    return {
        "StartAt": "All",
        "States": {"All": {"Type": "Parallel", "End": True, "Branches": branches}},
    }


def _deliver_all(runner: Any, bus: Any, first: list[Message]) -> tuple[int, int]:
    """Deliver ``first``, then every task message sent meanwhile; (deliveries, failures)."""
    queue, deliveries, failures = list(first), 0, 0
    while queue:
        message = queue.pop(0)
        seen = len(bus.sent)
        deliveries += 1
        failed = runner.handle_batch([message])
        failures += len(failed)
        queue.extend(failed_message for failed_message, _ in failed)
        queue.extend(m for m in bus.sent[seen:] if m.kind == "task")
        assert deliveries < 50
    return deliveries, failures


def test_uncovered_members_are_handed_off_not_failed() -> None:
    names = "abcdef"
    now = [1_000.0]
    calls = Counter[str]()

    def slow(name: str) -> Any:
        def run(payload: Any) -> Any:
            calls[name] += 1
            now[0] += 300  # each member takes a third of the lease
            return {"ran": name}

        return run

    log, _bus, runner, messages = setup({}, _parallel(names), grouped=True)
    bus = runner.tasks_bus  # hand-offs go to the runner's queue (review 36)
    assert isinstance(bus, RecordingBus)
    (group,) = messages
    runner.invoker = task_invoker({n: slow(n) for n in names})
    runner.clock = lambda: now[0]
    runner.task_concurrency = 1  # one thread: the members wait for each other
    bus.sent.clear()
    # THEN the group is acknowledged at its first delivery, no delivery ever fails
    assert runner.handle_batch([group]) == []
    handed = [m for m in bus.sent if m.kind == "task"]
    assert len(handed) == 5  # a ran; the five others went on their own
    deliveries, failures = _deliver_all(runner, bus, handed)
    assert failures == 0 and deliveries == 5
    assert runner.handle_batch([group]) == []  # a duplicate of the group runs nothing
    assert calls == dict.fromkeys(names, 1)
    record = log.get(group.execution_arn)
    assert record is not None and record.status == "SUCCEEDED"


def _late_claim() -> tuple[Any, Any, Any, list[Message], list[tuple[str, str, float]], list[float]]:
    now = [0.0]
    starts: list[tuple[str, str, float]] = []

    def slow(name: str) -> Any:
        def run(payload: Any) -> Any:
            starts.append((str(payload["n"]), name, now[0]))
            now[0] += 500
            return {"ran": name}

        return run

    log, _bus, runner, messages = setup(
        {}, _parallel("abc", timeout=500), names=("x", "y"), grouped=True
    )
    bus = runner.tasks_bus  # hand-offs go to the runner's queue (review 36)
    assert isinstance(bus, RecordingBus)
    runner.invoker = task_invoker({n: slow(n) for n in "abc"})
    runner.clock = lambda: now[0]
    runner.task_concurrency = 1
    bus.sent.clear()
    return log, bus, runner, messages, starts, now


def test_a_member_the_invocation_cannot_cover_is_handed_off() -> None:
    log, bus, runner, messages, starts, now = _late_claim()
    deadline = 900.0  # RUNNER_FUNCTION_TIMEOUT, from the invocation's start
    assert runner.handle_batch(messages, remaining=lambda: deadline - now[0]) == []
    # THEN no member started that the invocation's deadline would cut
    assert starts and all(t + 500 <= deadline for _, _, t in starts)
    handed = [m for m in bus.sent if m.kind == "task"]
    assert len(handed) == 6 - len(starts)
    _, failures = _deliver_all(runner, bus, handed)  # later invocations, no deadline
    assert failures == 0
    assert Counter((x, n) for x, n, _ in starts) == {(x, n): 1 for x in "xy" for n in "abc"}
    for group in messages:
        record = log.get(group.execution_arn)
        assert record is not None and record.status == "SUCCEEDED"


class _Context:
    """A Lambda context whose deadline is ``deadline`` on the test's clock."""

    def __init__(self, now: list[float], deadline: float) -> None:
        self._now, self._deadline = now, deadline

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - self._now[0]) * 1000)


def test_the_runner_lambda_passes_its_time_left_to_the_group_claim(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stepper_lambda, "_signer", SIGNER)
    _log, bus, runner, messages, starts, now = _late_claim()
    records = [
        {"messageId": str(i), "body": encode_message(m, SIGNER)} for i, m in enumerate(messages)
    ]
    try:
        response = stepper_lambda.respond({"Records": records}, _Context(now, 900.0), runner)  # type: ignore[arg-type]
    finally:  # the handler's decorator flushes them; other tests read the next flush
        stepper_lambda.metrics.clear_metrics()
    assert response == {"batchItemFailures": []}
    assert starts and all(t + 500 <= 900.0 for _, _, t in starts)
    assert len([m for m in bus.sent if m.kind == "task"]) == 6 - len(starts)


# C. the wire encoding writes UTF-8 as is: a payload under the limit in UTF-8 is sent


class _SQS:
    """An SQS client that keeps the bodies sent (moto's own limit is 1 MiB)."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    def send_message(self, **kwargs: Any) -> None:
        self.bodies.append(kwargs["MessageBody"])

    def send_message_batch(self, **kwargs: Any) -> dict[str, Any]:
        for entry in kwargs["Entries"]:
            self.bodies.append(entry["MessageBody"])
        return {"Successful": [{"Id": e["Id"]} for e in kwargs["Entries"]], "Failed": []}


def _on_sqs(machine: dict[str, Any], handlers: dict[str, Any]) -> tuple[InMemoryLog, Stepper, _SQS]:
    client, log = _SQS(), InMemoryLog()
    stepper = Stepper(
        log=log,
        bus=InMemoryBus(),
        definitions=lambda _arn: parse(machine),
        clock=lambda: 1_000.0,
        invoker=task_invoker(handlers),
        inline_tasks=False,
        tasks_bus=SQSBus("https://queue", signer=SIGNER, client=client),
        task_concurrency=10,
    )
    return log, stepper, client


def _run_queue(stepper: Stepper, client: _SQS) -> int:
    """Deliver every body the tasks queue got, as the runner would; the failed deliveries."""
    failures = 0
    while client.bodies:
        assert all(
            wire_size(b, decode_message(b, SIGNER)) <= MAX_MESSAGE_BYTES for b in client.bodies
        )
        batch = [decode_message(b, SIGNER) for b in client.bodies]
        client.bodies.clear()
        failures += len(stepper.handle_batch(batch))
    return failures


def test_a_big_non_ascii_task_output_goes_on_through_sqs() -> None:
    calls = Counter[str]()
    two = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Task", "Resource": FN + "a", "Next": "B"},
            "B": {"Type": "Task", "Resource": FN + "b", "End": True},
        },
    }

    def a(payload: Any) -> Any:
        calls["a"] += 1
        return {"big": "é" * 100_000}  # 200 KB of UTF-8: 600 KB escaped

    def b(payload: Any) -> Any:
        calls["b"] += 1
        assert payload == {"big": "é" * 100_000}
        return {"ok": 1}

    log, stepper, client = _on_sqs(two, {"a": a, "b": b})
    stepper.start_execution(state_machine_arn=SM, name="x", input={}, seed=1)
    assert _run_queue(stepper, client) == 0
    assert calls == {"a": 1, "b": 1}
    record = log.get(SM.replace(":stateMachine:", ":execution:") + ":x")
    assert record is not None and record.status == "SUCCEEDED"


def test_a_big_non_ascii_input_and_map_item_start() -> None:
    calls = Counter[str]()

    def a(payload: Any) -> Any:
        calls[str(payload)[:5]] += 1
        return 1

    one = {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": FN + "a", "End": True}}}
    log, stepper, client = _on_sqs(one, {"a": a})
    stepper.start_execution(state_machine_arn=SM, name="x", input={"big": "é" * 100_000}, seed=1)
    assert len(client.bodies) == 1
    assert _run_queue(stepper, client) == 0
    inline = {"ProcessorConfig": {"Mode": "INLINE"}, **one}
    mapped = {
        "StartAt": "M",
        "States": {"M": {"Type": "Map", "End": True, "ItemProcessor": inline}},
    }
    log, stepper, client = _on_sqs(mapped, {"a": a})
    stepper.start_execution(
        state_machine_arn=SM, name="y", input=["small", "é" * 60_000, "small2"], seed=1
    )
    assert len(client.bodies) == 1  # the three items' tasks, one group
    assert _run_queue(stepper, client) == 0
    assert sum(calls.values()) == 4
    record = log.get(SM.replace(":stateMachine:", ":execution:") + ":y")
    assert record is not None and record.status == "SUCCEEDED"


def test_old_escaped_and_new_bodies_both_verify() -> None:
    text = "é中\U0001f600\u2028\ufffe\uffff\ud800 \x00\n"
    message = Message(ARN, ARN + "#1#0", "task", {"task_id": "t1", "input": {text: text}})
    wire = SIGNER.sign(message)
    new = encode_message(message, SIGNER)
    old = json.dumps(wire, separators=(",", ":"), sort_keys=True)  # as written before
    assert "é" in new and "\\u00e9" in old
    assert decode_message(new, SIGNER) == message
    assert decode_message(old, SIGNER) == message
    # nothing SQS refuses in a body: only #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-
    allowed = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")
    assert allowed.fullmatch(new)
    assert len(new.encode()) < len(old.encode())


def test_express_rearm_chunks_are_sized_as_the_bus_writes_them() -> None:
    # two saved states of 20,000 U+FFFF: 120 KB of UTF-8 together (under REARM_BYTES),
    # 240 KB as the bus writes them (each escaped to six bytes)
    key = "arn:aws:states:us-east-1:1:mapRun:M/x:r"
    message = Message(key + "#xb/0", key + "#xb/0#0#0", "task", {"run": key, "items": []})
    state = {"index": 0, "status": "PENDING", "state": "\uffff" * 20_000, "wake_at": 5.0}
    out = _rearmed(message, [[0, state], [1, {**state, "index": 1}]])
    assert len(out) == 2
    for later, _ in out:
        items = later.body["items"]
        assert sum(len(encode_wire(e[1]).encode()) for e in items) <= REARM_BYTES
        assert wire_size(encode_message(later, SIGNER), later) <= MAX_MESSAGE_BYTES
