"""The payload store: blobs too large for a log item, addressed by their SHA-256.

The coordination log writes a large document here *before* its commit and
keeps only the returned key, so a crash between the two leaves at worst an
unreferenced object, never a reference to a missing one. Keys are the content's
SHA-256 (hex): writing the same bytes again is idempotent and yields the same
key, and a reader can check what it got. The AWS implementation is
:class:`stepflow.aws.s3_payloads.S3PayloadStore`.
"""

from __future__ import annotations

import hashlib
import re
import threading
from typing import Protocol

_KEY = re.compile(r"[0-9a-f]{64}")


class PayloadNotFoundError(KeyError):
    """No payload is stored under the key (or the key is not a payload key)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"no payload stored under {self.key!r}"


class PayloadCorruptError(ValueError):
    """The bytes stored under a key do not hash to that key."""


class PayloadStoreUnavailableError(Exception):
    """The store could not be reached or refused the request."""


class PayloadStore(Protocol):
    """Immutable, content-addressed blobs."""

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its key (:func:`content_key`); idempotent."""

    def get(self, key: str) -> bytes:
        """The bytes stored under ``key``; :class:`PayloadNotFoundError` if none."""


def read_at_most(store: PayloadStore, key: str, max_bytes: int) -> bytes:
    """The bytes under ``key``, read only if there are at most ``max_bytes`` of them.

    A store with ``get_at_most(key, max_bytes)`` (S3: a ranged GET) never downloads more
    than ``max_bytes + 1`` bytes; any other is read whole, then measured. More bytes than
    that, or bytes that do not hash to ``key``, raise :class:`PayloadCorruptError`.
    """
    bounded = getattr(store, "get_at_most", None)
    data: bytes = bounded(key, max_bytes) if callable(bounded) else store.get(key)
    if len(data) > max_bytes:
        raise PayloadCorruptError(f"the payload stored under {key!r} is over {max_bytes} bytes")
    return verified(key, data)


def content_key(data: bytes) -> str:
    """The key of ``data``: its SHA-256, in lowercase hex."""
    return hashlib.sha256(data).hexdigest()


def check_key(key: str) -> str:
    """``key`` if it is a well-formed payload key, else :class:`PayloadNotFoundError`."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise PayloadNotFoundError(key)
    return key


def verified(key: str, data: bytes) -> bytes:
    """``data`` if it hashes to ``key``, else :class:`PayloadCorruptError`."""
    if content_key(data) != key:
        raise PayloadCorruptError(f"the payload stored under {key!r} does not match its hash")
    return data


class InMemoryPayloadStore:
    """A :class:`PayloadStore` in a dict; ``puts`` counts writes (for tests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.objects: dict[str, bytes] = {}
        self.puts = 0

    def put(self, data: bytes) -> str:
        """Store ``data`` under its hash."""
        key = content_key(data)
        with self._lock:
            self.objects[key] = bytes(data)
            self.puts += 1
        return key

    def get(self, key: str) -> bytes:
        """The stored bytes, checked against the key."""
        with self._lock:
            data = self.objects.get(check_key(key))
        if data is None:
            raise PayloadNotFoundError(key)
        return verified(key, data)
