"""Queue bodies over SQS's limit go through the payload store; the queue carries a reference.

:func:`encode_body` is the one place a message becomes a queue body (the SQS bus calls
it for the transition and tasks queues). A signed body whose size on the wire
(:func:`~stepflow.runtime.wire.wire_size`, as SQS counts it) passes
:data:`~stepflow.runtime.wire.MAX_MESSAGE_BYTES` is written to the payload store
first, then a *reference* is sent in its place: a message with the same execution,
id, kind and ``not_before`` whose body is only ``{"offloaded": {"key", "bytes"}}``,
signed like any other. The key is the SHA-256 of the stored bytes
(:func:`~stepflow.runtime.payloads.content_key`), so the signature over the
reference covers the digest of what is processed.

:func:`decode_body` verifies a body; for a reference it reads the stored bytes,
checks their digest and length against the signed reference, verifies the stored
message's own signature and that it is the message the reference names (same
execution, id, kind, ``not_before``): a stored body swapped for another message's or
forged is refused as :class:`ForgedMessageError`. A reference whose object cannot be
read (the store is down, the object missing) raises
:class:`~stepflow.runtime.payloads.PayloadStoreUnavailableError` or
:class:`~stepflow.runtime.payloads.PayloadNotFoundError`, and one whose object is not
the signed length or digest (overwritten by someone with write access to the bucket,
not a forger: the reference itself is authentic) raises
:class:`~stepflow.runtime.payloads.PayloadCorruptError`. Such a record is retried, and
dead-lettered after the queue's receive limit, never dropped as forged. The object is
read only up to its signed length plus one byte (S3: a ranged GET).

Crash safety: the object is stored before the reference is sent, and the key is the
content's hash, so a retried send rewrites the same object and a redelivered
reference reads it again. Stored bodies live under their own prefix, which a
lifecycle rule expires (see ``docs/limits.md``, "Queue messages").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from stepflow.runtime.messages import Message
from stepflow.runtime.payloads import (
    PayloadCorruptError,
    PayloadNotFoundError,
    PayloadStore,
    read_at_most,
)
from stepflow.runtime.signing import ForgedMessageError, MessageSigner
from stepflow.runtime.wire import MAX_MESSAGE_BYTES, MessageTooLargeError, encode_wire, wire_size

OFFLOADED = "offloaded"
"""The only field of a reference's body: ``{"key": <sha256 hex>, "bytes": <length>}``."""


@dataclass(frozen=True, slots=True)
class Body:
    """A queue body: ``text``, its UTF-8 ``size``, ``offloaded`` if it is a reference."""

    text: str
    size: int
    offloaded: bool = False


def wire_form(
    message: Message, signer: MessageSigner, payloads: PayloadStore | None
) -> dict[str, Any]:
    """The signed wire form of ``message`` (a JSON object), or of its reference if too large.

    For a queue whose client writes the JSON itself (the activity task queues); measured
    as :func:`encode_body` measures, with the bus's attributes (a few bytes to spare).
    """
    wire = signer.sign(message)
    data = encode_wire(wire).encode()
    if len(data) + wire_size("", message) <= MAX_MESSAGE_BYTES:
        return wire
    return signer.sign(_stored(message, data, payloads))


def _stored(message: Message, data: bytes, payloads: PayloadStore | None) -> Message:
    """Store ``data`` (``message``'s signed body) and return the reference to sign."""
    if payloads is None:
        raise MessageTooLargeError(
            f"{message.id}: {len(data) + wire_size('', message)} bytes on the wire, over "
            f"SQS's {MAX_MESSAGE_BYTES}, and no payload store to offload it to"
        )
    key = payloads.put(data)
    return Message(
        execution_arn=message.execution_arn,
        id=message.id,
        kind=message.kind,
        body={OFFLOADED: {"key": key, "bytes": len(data)}},
        not_before=message.not_before,
    )


def encode_body(message: Message, signer: MessageSigner, payloads: PayloadStore | None) -> Body:
    """The queue body of ``message``: its signed JSON, or a signed reference if too large.

    Raises :class:`~stepflow.runtime.wire.MessageTooLargeError` if the body is over the
    limit and there is no payload store to offload it to. A store that fails raises its
    own error (:class:`~stepflow.runtime.payloads.PayloadStoreUnavailableError`):
    nothing was sent.
    """
    text = encode_wire(signer.sign(message))
    data = text.encode()
    extra = wire_size("", message)
    if len(data) + extra <= MAX_MESSAGE_BYTES:
        return Body(text, len(data))
    reference = _stored(message, data, payloads)
    ref_text = encode_wire(signer.sign(reference))
    ref_data = ref_text.encode()
    if len(ref_data) + extra > MAX_MESSAGE_BYTES:  # only an absurd execution ARN or id
        raise MessageTooLargeError(f"{message.id}: even its reference is over SQS's limit")
    return Body(ref_text, len(ref_data), offloaded=True)


def decode_body(text: str, signer: MessageSigner, payloads: PayloadStore | None) -> Message:
    """The message a queue body written by :func:`encode_body` carries, fetched if stored.

    Raises :class:`ForgedMessageError` for a body (or stored body) that is not an
    authentic StepFlow message, or a stored body that is not the one its reference
    names; the payload store's errors if the stored body cannot be read or is not the
    signed length and digest (:class:`PayloadCorruptError`): the record is retried.
    """
    return resolve(_json(text), signer, payloads)


def resolve(data: object, signer: MessageSigner, payloads: PayloadStore | None) -> Message:
    """:func:`decode_body` of a body already parsed from JSON (``data``)."""
    message = signer.verify(data)
    reference = reference_of(message)
    if reference is None:
        return message
    key, length = reference
    if payloads is None:
        raise PayloadNotFoundError(key)  # not forged: this consumer has no store (a retry)
    data = read_at_most(payloads, key, length)  # PayloadCorruptError: retried, not dropped
    if len(data) != length:
        raise PayloadCorruptError(f"the payload stored under {key!r} is not {length} bytes")
    try:
        stored = signer.verify(_json(data.decode("utf-8")))
    except UnicodeDecodeError:
        raise ForgedMessageError("malformed") from None
    if reference_of(stored) is not None or _envelope(stored) != _envelope(message):
        raise ForgedMessageError("stored body swapped")
    return stored


def reference_of(message: Message) -> tuple[str, int] | None:
    """``(key, bytes)`` if ``message`` is a reference to a stored body, else None.

    A body holding :data:`OFFLOADED` with anything beside it, or a malformed reference,
    is refused (:class:`ForgedMessageError`): no producer writes one.
    """
    found = message.body.get(OFFLOADED)
    if found is None:
        return None
    if len(message.body) != 1 or not isinstance(found, dict) or set(found) != {"key", "bytes"}:
        raise ForgedMessageError("malformed reference")
    key, length = found["key"], found["bytes"]
    if not isinstance(key, str) or len(key) != 64 or not isinstance(length, int):
        raise ForgedMessageError("malformed reference")
    return key, length


def _envelope(message: Message) -> tuple[str, str, str, float]:
    return message.execution_arn, message.id, message.kind, float(message.not_before)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise ForgedMessageError("malformed") from None
