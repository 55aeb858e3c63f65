"""The message-signing keys of a deployed stack, read from Secrets Manager.

The CDK stack creates one secret with a generated value. Its ``AWSCURRENT``
version signs; its ``AWSPREVIOUS`` version (the key before the last rotation)
is still accepted, so messages in flight during a rotation are not lost, and
so is an ``AWSPENDING`` version (the next key, staged before it is promoted,
so that every function accepts it before any function signs with it). The key
id of each is the secret's ``VersionId``.

A function reads the secret once per cold start. It reads it again only when
a message names a key id it does not hold (another function already signs
with a newer key), at most once per :data:`REFRESH_SECONDS`, so forged key
ids cannot turn into a flood of reads; and at the latest after
:data:`MAX_AGE_SECONDS`, so a function that only signs moves to a rotated
key too.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from stepflow.runtime.signing import KeyRing, MessageSigner, SigningKey

REFRESH_SECONDS = 30.0
"""The shortest interval between two reads caused by unknown key ids."""

MAX_AGE_SECONDS = 3600.0
"""The longest a function keeps a ring without reading the secret again."""


class SigningKeyError(RuntimeError):
    """The signing secret could not be read or holds no usable key (a startup error)."""


class SecretsManagerKeys:
    """A :class:`~stepflow.runtime.signing.KeySource` on one Secrets Manager secret."""

    def __init__(
        self, secret_id: str, *, client: Any, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.secret_id, self._client, self._clock = secret_id, client, clock
        self._lock = threading.Lock()
        self.reads = 0
        """Reads of the secret so far (each reads both versions)."""
        self._ring = self._read()
        self._read_at = clock()
        self._refreshed_at = float("-inf")

    def keys(self) -> KeyRing:
        """The cached ring (read again once it is :data:`MAX_AGE_SECONDS` old)."""
        with self._lock:
            if self._clock() - self._read_at >= MAX_AGE_SECONDS:
                self._reload()
            return self._ring

    def refresh(self) -> KeyRing:
        """The ring read again, unless it was read less than :data:`REFRESH_SECONDS` ago."""
        with self._lock:
            if self._clock() - self._refreshed_at >= REFRESH_SECONDS:
                self._refreshed_at = self._clock()
                self._reload()
            return self._ring

    def _reload(self) -> None:
        with contextlib.suppress(SigningKeyError):  # keep the keys in hand; retried later
            self._ring = self._read()
        self._read_at = self._clock()

    def _read(self) -> KeyRing:
        self.reads += 1
        current = self._version("AWSCURRENT")
        if current is None:
            raise SigningKeyError(f"the signing secret {self.secret_id!r} has no current value")
        others = (self._version("AWSPREVIOUS"), self._version("AWSPENDING"))
        return KeyRing(current, tuple(key for key in others if key is not None))

    def _version(self, stage: str) -> SigningKey | None:
        try:
            found = self._client.get_secret_value(SecretId=self.secret_id, VersionStage=stage)
        except Exception as exc:
            if stage != "AWSCURRENT" and _code(exc) == "ResourceNotFoundException":
                return None  # never rotated, or no rotation under way
            raise SigningKeyError(
                f"reading the signing secret ({stage}) failed: {_code(exc) or type(exc).__name__}"
            ) from exc
        text = found.get("SecretString")
        if not isinstance(text, str) or not text:
            raise SigningKeyError(f"the signing secret ({stage}) holds no text")
        try:
            return SigningKey.from_text(text, key_id=str(found["VersionId"]))
        except ValueError as exc:
            raise SigningKeyError(f"the signing secret ({stage}): {exc}") from None


def secrets_manager_signer(secret_id: str, *, client: Any) -> MessageSigner:
    """A signer on the stack's secret; :class:`SigningKeyError` if it cannot be read."""
    return MessageSigner(SecretsManagerKeys(secret_id, client=client))


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
