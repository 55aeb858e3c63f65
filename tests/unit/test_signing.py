"""Signed internal messages: the HMAC, tampering, keys and rotation, and the in-memory bus.

The in-memory bus signs and verifies like the SQS bus, so a forged message put
on it reaches no stepper; a replayed genuine one is still only idempotent.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import pytest
from stepflow.engine import TaskSucceeded
from stepflow.runtime import InMemoryLog, Message, encode_event
from stepflow.runtime.signing import (
    ForgedMessageError,
    KeyRing,
    MessageSigner,
    SigningKey,
)
from stepflow.testing import WorkflowEnvironment

ARN = "arn:aws:states:us-east-1:123456789012:execution:Orders:e1"
OLD = SigningKey("v1", b"o" * 32)
NEW = SigningKey("v2", b"n" * 32)


def message(**overrides: Any) -> Message:
    fields: dict[str, Any] = {
        "execution_arn": ARN,
        "id": f"{ARN}#3#0",
        "kind": "event",
        "body": {
            "type": "TaskSucceeded",
            "task_id": "t-1",
            "output": {"é": "\ud800", "n": [1, 2.5, -0.0, 1e300, None, True], "": {}},
        },
        "not_before": 1_700_000_123.5,
    }
    return Message(**{**fields, **overrides})


def wire(signed: dict[str, Any]) -> dict[str, Any]:
    """What a consumer parses: the signed form through JSON text, as on a queue."""
    parsed: dict[str, Any] = json.loads(json.dumps(signed, sort_keys=True))
    return parsed


def test_a_signed_message_verifies_after_a_json_round_trip() -> None:
    signer = MessageSigner(KeyRing(NEW))
    signed = signer.sign(message())
    assert signed["key_id"] == "v2" and len(signed["signature"]) == 64
    assert signer.verify(wire(signed)) == message()
    assert signer.forged == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("execution_arn", ARN.replace("e1", "e2")),
        ("id", f"{ARN}#4#0"),
        ("kind", "repair"),
        ("body", {"type": "TaskSucceeded", "task_id": "t-1", "output": {"paid": True}}),
        ("not_before", 0.0),
    ],
)
def test_changing_any_field_breaks_the_signature(field: str, value: Any) -> None:
    signer = MessageSigner(KeyRing(NEW))
    tampered = {**wire(signer.sign(message())), field: value}
    with pytest.raises(ForgedMessageError, match="bad signature"):
        signer.verify(tampered)
    assert signer.forged == 1


def test_a_signature_moved_to_another_message_or_altered_is_refused() -> None:
    signer = MessageSigner(KeyRing(NEW))
    genuine = wire(signer.sign(message(id="a")))
    other = wire(signer.sign(message(id="b")))
    moved = {**other, "signature": genuine["signature"]}
    flipped = {**genuine, "signature": ("0" if genuine["signature"][0] != "0" else "1")}
    flipped["signature"] += genuine["signature"][1:]
    for forged in (moved, flipped, {**genuine, "signature": genuine["signature"].upper()}):
        with pytest.raises(ForgedMessageError, match="bad signature"):
            signer.verify(forged)


def test_unsigned_malformed_and_wrong_key_messages_are_refused_with_a_reason() -> None:
    signer = MessageSigner(KeyRing(NEW))
    cases: list[tuple[object, str]] = [
        (message().to_json(), "unsigned"),
        ([1, 2], "malformed"),
        ({**message().to_json(), "key_id": "v2", "signature": "zz"}, "malformed"),
        ({**message().to_json(), "key_id": 2, "signature": "0" * 64}, "malformed"),
        ({"key_id": "v2", "signature": "0" * 64, "kind": "event"}, "malformed"),
        (MessageSigner.random().sign(message()), "unknown key"),
        # the right key id, another secret
        (MessageSigner(KeyRing(SigningKey("v2", b"x" * 32))).sign(message()), "bad signature"),
        # a kid naming a key the ring holds, with its id moved onto another key's signature
        ({**MessageSigner(KeyRing(OLD)).sign(message()), "key_id": "v2"}, "bad signature"),
    ]
    for data, reason in cases:
        with pytest.raises(ForgedMessageError) as refused:
            signer.verify(data)
        assert refused.value.reason == reason, data
    assert signer.forged == len(cases)


def test_the_reason_never_carries_execution_data() -> None:
    signer = MessageSigner(KeyRing(NEW))
    with pytest.raises(ForgedMessageError) as refused:
        signer.verify({**wire(signer.sign(message())), "execution_arn": "secret-arn"})
    assert "secret" not in str(refused.value) and ARN not in str(refused.value)


def test_during_a_rotation_the_previous_key_is_accepted_then_dropped() -> None:
    old = MessageSigner(KeyRing(OLD))
    rotated = MessageSigner(KeyRing(NEW, (OLD,)))
    in_flight = wire(old.sign(message()))
    # a message signed before the rotation still verifies; new ones use the new key
    assert rotated.verify(in_flight) == message()
    assert rotated.sign(message())["key_id"] == "v2"
    # after the next rotation the old key is no longer accepted
    with pytest.raises(ForgedMessageError, match="unknown key"):
        MessageSigner(KeyRing(SigningKey("v3", b"3" * 32), (NEW,))).verify(in_flight)


def test_an_unknown_key_id_reloads_the_keys_once_then_verifies() -> None:
    class Source:
        def __init__(self) -> None:
            self.ring, self.refreshes = KeyRing(OLD), 0

        def keys(self) -> KeyRing:
            return self.ring

        def refresh(self) -> KeyRing:
            self.refreshes += 1
            self.ring = KeyRing(NEW, (OLD,))  # another process rotated first
            return self.ring

    source = Source()
    signer = MessageSigner(source)
    assert signer.verify(wire(MessageSigner(KeyRing(NEW)).sign(message()))) == message()
    assert source.refreshes == 1
    assert signer.verify(wire(MessageSigner(KeyRing(NEW)).sign(message()))) == message()
    assert source.refreshes == 1


def test_keys_are_long_enough_and_never_in_a_repr() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SigningKey("k", b"short")
    assert "nnnn" not in repr(NEW) and "nnnn" not in repr(KeyRing(NEW))
    a, b = MessageSigner.random(), MessageSigner.random()
    assert a.source.keys().current.key_id != b.source.keys().current.key_id


# -- the in-memory bus, through WorkflowEnvironment --------------------------------------------


class CountingLog:
    """The in-memory log, counting every write."""

    def __init__(self) -> None:
        self.inner = InMemoryLog()
        self.writes = 0

    def commit(self, record: Any, expected_seq: int, events: Sequence[Any], **kw: Any) -> None:
        self.writes += 1
        self.inner.commit(record, expected_seq, events, **kw)

    def put_lease(self, lease: Any) -> None:
        self.writes += 1
        self.inner.put_lease(lease)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


ACTIVITY = "arn:aws:states:us-east-1:123456789012:activity:payments"
ON_ACTIVITY = {
    "StartAt": "Pay",
    "States": {"Pay": {"Type": "Task", "Resource": ACTIVITY, "End": True}},
}
FN = "arn:aws:lambda:us-east-1:123456789012:function:double"
ON_LAMBDA = {
    "StartAt": "Double",
    "States": {"Double": {"Type": "Task", "Resource": FN, "End": True}},
}


def test_in_memory_a_forged_completion_completes_nothing_and_writes_nothing() -> None:
    log = CountingLog()
    env = WorkflowEnvironment(log=log)  # type: ignore[arg-type]
    arn = env.start(ON_ACTIVITY, {"order": 1})
    env.run(arn)
    (task,) = env.open_tasks(arn)
    writes = log.writes
    # WHEN the messages that would complete the task are put on the bus, unsigned, with a
    # key of the attacker's and with a genuine signature moved onto them
    forged = Message(arn, "forged#result", "event", encode_event(TaskSucceeded(task.task_id, 1)))
    env.bus.send_wire(forged.to_json())
    env.bus.send_wire(MessageSigner.random().sign(forged))
    genuine = env.bus.signer.sign(dataclasses.replace(forged, body={"type": "Continue"}))
    env.bus.send_wire({**genuine, **forged.to_json()})
    env.run_until_idle()
    # THEN nothing was delivered, nothing written; the task is open; each was counted
    assert env.bus.signer.forged == 3 and len(env.bus) == 0
    assert log.writes == writes
    assert env.describe(arn)["status"] == "RUNNING"
    assert [t.task_id for t in env.open_tasks(arn)] == [task.task_id]
    # AND the worker's answer completes it, with the worker's output
    env.complete(task.token, {"by": "worker"})
    assert env.result(arn).output == '{"by":"worker"}'


def test_in_memory_a_replayed_genuine_message_has_no_second_effect() -> None:
    calls: list[Any] = []

    def double(payload: Any) -> Any:
        calls.append(payload)
        return payload * 2

    log = CountingLog()
    env = WorkflowEnvironment(log=log, handlers={"double": double})  # type: ignore[arg-type]
    arn = env.start(ON_LAMBDA, 21)
    env.run(arn)
    assert env.result(arn).output == "42"
    history, writes = len(env.history(arn)), log.writes
    # WHEN every message the execution ever sent is captured (signed) and replayed
    for sent in list(env.bus.sent):
        env.bus.send_wire(env.bus.signer.sign(sent))
    env.run_until_idle()
    # THEN they verify (nothing forged), but the log's seq check makes each a no-op
    assert env.bus.signer.forged == 0
    assert len(env.history(arn)) == history and log.writes == writes
    assert calls == [21]
