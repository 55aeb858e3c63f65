"""Queue bodies over SQS's limit: stored, referenced, fetched and checked (runtime/offload.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from stepflow.runtime import Message
from stepflow.runtime.offload import OFFLOADED, decode_body, encode_body
from stepflow.runtime.payloads import (
    InMemoryPayloadStore,
    PayloadCorruptError,
    PayloadNotFoundError,
    content_key,
)
from stepflow.runtime.signing import ForgedMessageError, MessageSigner
from stepflow.runtime.wire import MessageTooLargeError, encode_wire

from tests.sqs_limit import LIMIT, sqs_size

SIGNER = MessageSigner.random()
ARN = "arn:aws:states:us-east-1:123456789012:execution:Orders:e1"


def message(pad: str = "", **overrides: Any) -> Message:
    fields: dict[str, Any] = {
        "execution_arn": ARN,
        "id": f"{ARN}#3#0",
        "kind": "event",
        "body": {"type": "TimerFired", "timer_id": "t-1", "pad": pad},
        "not_before": 1_700_000_123.5,
    }
    return Message(**{**fields, **overrides})


def on_wire(text: str, sent: Message) -> int:
    """What SQS counts for ``text`` sent with the bus's two attributes."""
    attributes = {
        "execution_arn": {"DataType": "String", "StringValue": sent.execution_arn},
        "message_id": {"DataType": "String", "StringValue": sent.id},
    }
    return sqs_size({"MessageBody": text, "MessageAttributes": attributes})


def sized(total: int) -> Message:
    """A message of exactly ``total`` bytes on the wire (ASCII padding)."""
    base = on_wire(encode_wire(SIGNER.sign(message())), message())
    return message("x" * (total - base))


def test_a_small_message_travels_inline_and_stores_nothing() -> None:
    store = InMemoryPayloadStore()
    sent = message("hello")
    body = encode_body(sent, SIGNER, store)
    assert not body.offloaded and store.puts == 0
    assert body.size == len(body.text.encode())
    assert decode_body(body.text, SIGNER, store) == sent


def test_exactly_at_the_limit_is_inline_and_one_byte_over_is_offloaded() -> None:
    store = InMemoryPayloadStore()
    at, over = sized(LIMIT), sized(LIMIT + 1)
    assert on_wire(encode_wire(SIGNER.sign(at)), at) == LIMIT
    inline = encode_body(at, SIGNER, store)
    assert not inline.offloaded and store.puts == 0
    assert on_wire(inline.text, at) == LIMIT
    stored = encode_body(over, SIGNER, store)
    assert stored.offloaded and store.puts == 1
    assert on_wire(stored.text, over) < 1_000
    assert decode_body(stored.text, SIGNER, store) == over


def test_non_ascii_is_measured_in_utf8_bytes_as_sqs_counts_it() -> None:
    # 140,000 characters (under the limit as characters) are 280,000 bytes in UTF-8.
    store = InMemoryPayloadStore()
    sent = message("é" * 140_000)
    assert len(encode_wire(SIGNER.sign(sent))) < LIMIT
    body = encode_body(sent, SIGNER, store)
    assert body.offloaded and store.puts == 1
    assert decode_body(body.text, SIGNER, store) == sent
    # an emoji body under the limit in bytes stays inline, unescaped
    small = message("😀" * 60_000)  # 240,000 bytes
    inline = encode_body(small, SIGNER, store)
    assert not inline.offloaded and on_wire(inline.text, small) <= LIMIT


def test_the_reference_names_the_digest_of_the_stored_bytes_and_is_signed() -> None:
    store = InMemoryPayloadStore()
    sent = sized(LIMIT + 10)
    body = encode_body(sent, SIGNER, store)
    reference = SIGNER.verify(json.loads(body.text))
    (key,) = store.objects
    assert reference.body == {OFFLOADED: {"key": key, "bytes": len(store.objects[key])}}
    assert key == content_key(store.objects[key])
    assert (reference.execution_arn, reference.id, reference.kind) == (ARN, sent.id, "event")
    assert reference.not_before == sent.not_before


def test_sending_again_stores_the_same_object_and_a_redelivery_reads_it_again() -> None:
    store = InMemoryPayloadStore()
    sent = sized(LIMIT + 1)
    first, second = encode_body(sent, SIGNER, store), encode_body(sent, SIGNER, store)
    assert first.text == second.text and len(store.objects) == 1
    assert decode_body(first.text, SIGNER, store) == decode_body(first.text, SIGNER, store) == sent


def test_an_altered_stored_body_is_refused_for_a_retry_not_dropped_as_forged() -> None:
    # only a party with write access to messages/ can alter it: the reference is authentic
    store, forged = InMemoryPayloadStore(), SIGNER.forged
    body = encode_body(sized(LIMIT + 1), SIGNER, store)
    (key,) = store.objects
    store.objects[key] = store.objects[key].replace(b'"x', b'"y', 1)
    with pytest.raises(PayloadCorruptError, match="does not match its hash"):
        decode_body(body.text, SIGNER, store)
    assert SIGNER.forged == forged


class BoundedStore(InMemoryPayloadStore):
    """A store that serves a bounded read only, as S3's ranged GET does; counts bytes served."""

    def __init__(self) -> None:
        super().__init__()
        self.served: list[int] = []

    def get(self, key: str) -> bytes:
        raise AssertionError("an offloaded body is read bounded")

    def get_at_most(self, key: str, max_bytes: int) -> bytes:
        data = self.objects[key][: max_bytes + 1]
        self.served.append(len(data))
        return data


def test_an_overwritten_huge_stored_body_is_read_only_to_its_signed_length() -> None:
    store = BoundedStore()
    body = encode_body(sized(LIMIT + 1), SIGNER, store)
    (key,) = store.objects
    length = len(store.objects[key])
    store.objects[key] = b"x" * (64 << 20)
    with pytest.raises(PayloadCorruptError, match=f"over {length} bytes"):
        decode_body(body.text, SIGNER, store)
    assert store.served == [length + 1]


class LyingStore(InMemoryPayloadStore):
    """A store that hands back whatever it holds, unchecked (S3 with a swapped object)."""

    def get(self, key: str) -> bytes:
        return self.objects[key]


def test_a_digest_mismatch_is_refused_even_from_a_store_that_does_not_check() -> None:
    store = LyingStore()
    body = encode_body(sized(LIMIT + 1), SIGNER, store)
    (key,) = store.objects
    other = replace(sized(LIMIT + 1), id="another")
    store.objects[key] = encode_wire(SIGNER.sign(other)).encode()  # authentic, but not it
    with pytest.raises(PayloadCorruptError, match="does not match its hash"):
        decode_body(body.text, SIGNER, store)


def _reference(sent: Message, key: str, length: int, signer: MessageSigner = SIGNER) -> str:
    ref = replace(sent, body={OFFLOADED: {"key": key, "bytes": length}})
    return encode_wire(signer.sign(ref))


def test_a_stored_body_swapped_for_another_messages_is_refused() -> None:
    # A signed reference that names the stored body of another (authentic) message.
    store = InMemoryPayloadStore()
    mine, theirs = sized(LIMIT + 1), replace(sized(LIMIT + 1), id=f"{ARN}#9#0")
    encode_body(theirs, SIGNER, store)
    (key,) = store.objects
    text = _reference(mine, key, len(store.objects[key]))
    with pytest.raises(ForgedMessageError, match="stored body swapped"):
        decode_body(text, SIGNER, store)


def test_a_forged_reference_is_refused() -> None:
    store = InMemoryPayloadStore()
    sent = sized(LIMIT + 1)
    body = encode_body(sent, SIGNER, store)
    (key,) = store.objects
    # the reference re-pointed without the key: its signature no longer matches
    planted = store.put(encode_wire(SIGNER.sign(message("planted"))).encode())
    with pytest.raises(ForgedMessageError, match="bad signature"):
        decode_body(body.text.replace(key, planted), SIGNER, store)
    # a reference signed with another key
    with pytest.raises(ForgedMessageError, match="unknown key"):
        decode_body(
            _reference(sent, key, len(store.objects[key]), MessageSigner.random()), SIGNER, store
        )
    # a stored body signed with another key, under a genuine reference
    stranger = encode_wire(MessageSigner.random().sign(sent)).encode()
    text = _reference(sent, store.put(stranger), len(stranger))
    with pytest.raises(ForgedMessageError, match="unknown key"):
        decode_body(text, SIGNER, store)


@pytest.mark.parametrize(
    "body",
    [
        {OFFLOADED: {"key": "0" * 64, "bytes": 3}, "type": "TimerFired"},
        {OFFLOADED: {"key": "0" * 63, "bytes": 3}},
        {OFFLOADED: {"key": "0" * 64}},
        {OFFLOADED: {"key": "0" * 64, "bytes": "3"}},
        {OFFLOADED: ["0" * 64, 3]},
    ],
)
def test_a_malformed_reference_is_refused(body: dict[str, Any]) -> None:
    text = encode_wire(SIGNER.sign(replace(message(), body=body)))
    with pytest.raises(ForgedMessageError, match="malformed reference"):
        decode_body(text, SIGNER, InMemoryPayloadStore())


def test_a_reference_to_a_reference_is_refused() -> None:
    store = InMemoryPayloadStore()
    sent = message()
    inner = _reference(sent, "0" * 64, 3).encode()
    with pytest.raises(ForgedMessageError, match="stored body swapped"):
        decode_body(_reference(sent, store.put(inner), len(inner)), SIGNER, store)


def test_without_a_store_an_oversize_message_is_refused_and_a_reference_is_not_dropped() -> None:
    with pytest.raises(MessageTooLargeError, match="no payload store"):
        encode_body(sized(LIMIT + 1), SIGNER, None)
    body = encode_body(sized(LIMIT + 1), SIGNER, InMemoryPayloadStore())
    with pytest.raises(PayloadNotFoundError):  # retried, never counted as forged
        decode_body(body.text, SIGNER, None)
    with pytest.raises(PayloadNotFoundError):  # the object is gone (expired): retried too
        decode_body(body.text, SIGNER, InMemoryPayloadStore())
