"""Authenticated internal messages: an HMAC-SHA256 over each message, keys that rotate.

Every message StepFlow puts on one of its own queues (the transition queue,
the tasks queue, the activity queues) is signed by the part that sends it and
verified by the part that consumes it. The signature covers a canonical byte
form of the whole message (:func:`canonical`): the execution ARN, the id, the
kind, the body, ``not_before`` and the id of the key, so no field can be
changed, and no signature moved to another message, without the key.

A message that is unsigned, malformed, signed with an unknown key or whose
signature does not match raises :class:`ForgedMessageError`: the consumer
drops it (acknowledges it, logs the reason only, counts it), never retries it.

Keys rotate: a :class:`KeyRing` signs with its current key and accepts the
current and previous ones. A :class:`KeySource` may reload its ring when it
meets an unknown key id (a newer key another process already uses).

Pure: stdlib ``hmac``/``hashlib``/``json``/``secrets`` only, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from stepflow.runtime.messages import Message

KEY_ID_FIELD = "key_id"
SIGNATURE_FIELD = "signature"
DOMAIN = "stepflow-message-v1"
"""Prefix of the signed bytes: a signature made for anything else never verifies here."""

MIN_KEY_BYTES = 32
"""The shortest key accepted (256 bits)."""

SIGNATURE_CHARS = 64
"""Characters of a signature (hex HMAC-SHA256)."""


class ForgedMessageError(ValueError):
    """A message that is not authentically StepFlow's; ``reason`` names why, nothing more."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One key: ``key_id`` travels with each message, ``secret`` never does."""

    key_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not self.key_id:
            raise ValueError("a signing key needs a key id")
        if len(self.secret) < MIN_KEY_BYTES:
            raise ValueError(f"a signing key needs at least {MIN_KEY_BYTES} bytes")

    @classmethod
    def from_text(cls, text: str, key_id: str | None = None) -> SigningKey:
        """A key from its text (UTF-8 bytes); the key id defaults to a short digest of it."""
        secret = text.encode("utf-8")
        return cls(key_id or _derived_id(secret), secret)


@dataclass(frozen=True, slots=True)
class KeyRing:
    """Sign with ``current``; accept ``current`` and every ``previous`` key."""

    current: SigningKey
    previous: tuple[SigningKey, ...] = ()

    def find(self, key_id: str) -> SigningKey | None:
        """The accepted key with ``key_id``, or None."""
        for key in (self.current, *self.previous):
            if key.key_id == key_id:
                return key
        return None


class KeySource(Protocol):
    """Where a signer's keys come from (a fixed ring, a secret store)."""

    def keys(self) -> KeyRing:
        """The ring to sign and verify with now."""

    def refresh(self) -> KeyRing:
        """The ring after a message named a key it does not hold (may be the same ring)."""


class StaticKeys:
    """A :class:`KeySource` that never changes."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    def keys(self) -> KeyRing:
        """The ring."""
        return self.ring

    def refresh(self) -> KeyRing:
        """The same ring."""
        return self.ring


def canonical(message: Message, key_id: str) -> bytes:
    """The bytes that are signed: every field of ``message`` and the key id, in one form.

    JSON with sorted keys, no spaces and ASCII escapes, so a message decoded
    from its JSON gives the same bytes as the message that was sent (lone
    surrogates included).
    """
    fields = [
        DOMAIN,
        key_id,
        message.execution_arn,
        message.id,
        message.kind,
        float(message.not_before),
        message.body,
    ]
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii")


class MessageSigner:
    """Signs messages into their wire form and verifies wire forms back into messages.

    ``forged`` counts the messages :meth:`verify` refused.
    """

    def __init__(self, source: KeySource | KeyRing) -> None:
        self.source: KeySource = StaticKeys(source) if isinstance(source, KeyRing) else source
        self.forged = 0
        self._lock = threading.Lock()

    @classmethod
    def random(cls) -> MessageSigner:
        """A signer with a fresh random key (``stepflow local``, in-memory environments)."""
        secret = secrets.token_bytes(MIN_KEY_BYTES)
        return cls(KeyRing(SigningKey(_derived_id(secret), secret)))

    @classmethod
    def from_text(cls, current: str, previous: str = "") -> MessageSigner:
        """A signer on raw key texts: ``current`` signs, ``previous`` (if any) is also accepted."""
        old = (SigningKey.from_text(previous),) if previous else ()
        return cls(KeyRing(SigningKey.from_text(current), old))

    def sign(self, message: Message) -> dict[str, Any]:
        """The wire form of ``message``: its JSON plus the key id and the signature."""
        key = self.source.keys().current
        return {
            **message.to_json(),
            KEY_ID_FIELD: key.key_id,
            SIGNATURE_FIELD: _mac(key, canonical(message, key.key_id)),
        }

    def verify(self, data: object) -> Message:
        """The message whose wire form is ``data``; :class:`ForgedMessageError` otherwise."""
        try:
            return self._verify(data)
        except ForgedMessageError:
            with self._lock:
                self.forged += 1
            raise

    def _verify(self, data: object) -> Message:
        if not isinstance(data, Mapping):
            raise ForgedMessageError("malformed")
        key_id, signature = data.get(KEY_ID_FIELD), data.get(SIGNATURE_FIELD)
        if key_id is None and signature is None:
            raise ForgedMessageError("unsigned")
        if not isinstance(key_id, str) or not isinstance(signature, str):
            raise ForgedMessageError("malformed")
        if len(signature) != SIGNATURE_CHARS or not signature.isascii():
            raise ForgedMessageError("malformed")
        try:
            message = Message.from_json(dict(data))
        except (KeyError, TypeError, ValueError):
            raise ForgedMessageError("malformed") from None
        key = self.source.keys().find(key_id) or self.source.refresh().find(key_id)
        if key is None:
            raise ForgedMessageError("unknown key")
        try:
            expected = _mac(key, canonical(message, key_id))
        except (TypeError, ValueError, RecursionError):  # JSON cannot hold it: never signed
            raise ForgedMessageError("malformed") from None
        if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii")):
            raise ForgedMessageError("bad signature")
        return message


def _mac(key: SigningKey, payload: bytes) -> str:
    return hmac.new(key.secret, payload, hashlib.sha256).hexdigest()


def _derived_id(secret: bytes) -> str:
    """A key id from the key: a truncated digest under a fixed label (it reveals nothing usable)."""
    return "k-" + hashlib.sha256(b"stepflow-key-id:" + secret).hexdigest()[:12]
