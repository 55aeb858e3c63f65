"""A message as a queue carries it: its JSON encoding and its size as SQS counts it.

:func:`encode_wire` is THE encoding of a signed message on the queue (the SQS bus
writes every body with it), and :func:`wire_size` counts what SQS counts against its
limit, :data:`MAX_MESSAGE_BYTES`: the body's UTF-8 bytes plus each message
attribute's name, type and value. The encoding writes UTF-8 as is, escaping only what
SQS refuses in a body (:func:`encode_wire`): a payload under the limit in UTF-8 is
under it on the wire too (review 6; escaping every non-ASCII character made an 'é'
six bytes, an emoji twelve). Signatures are over their own canonical form
(:mod:`stepflow.runtime.signing`), so bodies written escaped before still verify.

:func:`unsigned_wire_size` measures a message before it is signed (the task groups
are cut before the bus signs them) with room for the longest key id it allows
(:data:`KEY_ID_ROOM`) and the signature's fixed length.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import orjson

from stepflow.runtime.messages import Message
from stepflow.runtime.signing import KEY_ID_FIELD, SIGNATURE_CHARS, SIGNATURE_FIELD

MAX_MESSAGE_BYTES = 262_144
"""SQS's largest message (body and attributes): 256 KiB."""

KEY_ID_ROOM = 128
"""Characters a signing key id is allowed for when a message is measured before signing."""


class MessageTooLargeError(ValueError):
    """A message over :data:`MAX_MESSAGE_BYTES` on the wire: SQS would refuse it."""


_REFUSED = re.compile("[\ud800-\udfff\ufffe\uffff]")
"""Characters SQS refuses in a body that JSON does not escape (U+FFFE, U+FFFF, surrogates).

SQS takes #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF; JSON escapes the
control characters below #x20 already. A lone surrogate cannot be stored anyway."""


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def encode_wire(wire: Mapping[str, Any]) -> str:
    """The queue body of a signed message's wire form: compact, sorted JSON in UTF-8.

    Only the characters SQS refuses are escaped (:data:`_REFUSED`; they occur only
    inside JSON strings, where the escape decodes to the same character).
    """
    text = json.dumps(wire, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    if text.isascii():
        return text
    return _REFUSED.sub(_escape, text)


def attributes(message: Message) -> dict[str, str]:
    """The string message attributes sent with ``message`` (for filtering and DLQ triage)."""
    return {"execution_arn": message.execution_arn, "message_id": message.id}


def wire_size(body: str, message: Message) -> int:
    """Bytes SQS counts for ``body`` with ``message``'s attributes (name, type, value)."""
    extra = sum(
        len(k.encode()) + len("String") + len(v.encode()) for k, v in attributes(message).items()
    )
    return len(body.encode()) + extra


def unsigned_wire_size(message: Message) -> int:
    """``message``'s :func:`wire_size` once signed, with room for a long key id."""
    placeholder = {
        **message.to_json(),
        KEY_ID_FIELD: "k" * KEY_ID_ROOM,
        SIGNATURE_FIELD: "s" * SIGNATURE_CHARS,
    }
    return wire_size(encode_wire(placeholder), message)


def check_wire(wire: Mapping[str, Any], message: Message) -> None:
    """:func:`check_size` of a wire form, cheaply for the common small message.

    Escaping makes a UTF-8 byte at most six (a control character's escape, which
    orjson writes too; only U+FFFE, U+FFFF, three bytes, become six), so a wire form
    whose raw UTF-8 is a sixth of the limit needs no encoding of its own.
    """
    try:
        raw = len(orjson.dumps(wire))
    except (TypeError, orjson.JSONEncodeError):
        raw = MAX_MESSAGE_BYTES
    if 6 * raw + wire_size("", message) <= MAX_MESSAGE_BYTES:
        return
    check_size(encode_wire(wire), message)


def check_size(body: str, message: Message) -> None:
    """Refuse ``body`` as SQS does: :class:`MessageTooLargeError` past the limit."""
    size = wire_size(body, message)
    if size > MAX_MESSAGE_BYTES:
        raise MessageTooLargeError(
            f"{message.id}: {size} bytes on the wire, over SQS's {MAX_MESSAGE_BYTES}"
        )
