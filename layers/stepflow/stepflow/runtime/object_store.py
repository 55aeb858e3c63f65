"""The few S3 operations a map run's reader and writer make: a port and its in-memory twin.

:class:`ObjectStore` is what :mod:`stepflow.runtime.item_reading` and
:mod:`stepflow.runtime.result_writing` call: ``GetObject`` (streamed),
``ListObjectsV2`` (one page) and a streamed upload. The S3 implementation
(:class:`stepflow.integrations.s3_objects.S3ObjectStore`) calls boto3 with the
task's role; :class:`MemoryObjectStore` keeps objects in a dict (tests, the
in-memory driver). A failed call raises :class:`ObjectStoreError` with AWS's cause.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime
from hashlib import md5
from typing import Any, Protocol


class ObjectStoreError(Exception):
    """An S3 call failed: ``cause`` is AWS's text, ``error`` its name (``S3.NoSuchKey…``)."""

    def __init__(self, cause: str, error: str = "") -> None:
        super().__init__(cause)
        self.cause = cause
        self.error = error


class Upload(Protocol):
    """One object being written, in pieces."""

    def write(self, data: bytes) -> None:
        """Append ``data``."""
        ...

    def close(self) -> None:
        """Finish the object (it exists from now on)."""
        ...

    def abort(self) -> None:
        """Give up: the object is not written."""
        ...


class ObjectStore(Protocol):
    """S3 as a map run uses it."""

    def get_object(self, parameters: dict[str, Any]) -> Iterator[bytes]:
        """The body of the object ``parameters`` name (``Bucket``, ``Key``, ``VersionId``…)."""
        ...

    def list_objects(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """One ``ListObjectsV2`` page: ``Contents`` and, if more, ``NextContinuationToken``."""
        ...

    def upload(self, bucket: str, key: str) -> Upload:
        """Start writing the object ``bucket``/``key``."""
        ...


class MemoryObjectStore:
    """Objects in a dict keyed by ``(bucket, key)``; counts the calls made."""

    PAGE_SIZE = 1000
    """Keys per ``ListObjectsV2`` page (``MaxKeys`` may ask for fewer), as S3."""

    def __init__(
        self, objects: MutableMapping[tuple[str, str], bytes] | None = None, chunk: int = 65536
    ) -> None:
        self.objects: MutableMapping[tuple[str, str], bytes] = (
            objects if objects is not None else {}
        )
        self.chunk = chunk
        self.calls: list[str] = []
        """``GetObject``, ``ListObjectsV2``, ``PutObject``: one entry per call, in order."""

    def get_object(self, parameters: dict[str, Any]) -> Iterator[bytes]:
        """The object's bytes in chunks; a missing one fails as S3's ``NoSuchKey``."""
        self.calls.append("GetObject")
        found = self.objects.get((str(parameters.get("Bucket")), str(parameters.get("Key"))))
        if found is None:
            raise ObjectStoreError(
                "The specified key does not exist. (Service: S3, Status Code: 404, "
                "Request ID: memory)",
                "S3.NoSuchKeyException",
            )
        return (found[i : i + self.chunk] for i in range(0, len(found), self.chunk))

    def list_objects(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """One page of the keys under ``Prefix`` after ``ContinuationToken``/``StartAfter``."""
        self.calls.append("ListObjectsV2")
        bucket = str(parameters.get("Bucket"))
        prefix = str(parameters.get("Prefix") or "")
        delimiter = str(parameters.get("Delimiter") or "")
        after = str(parameters.get("ContinuationToken") or parameters.get("StartAfter") or "")
        size = min(int(parameters.get("MaxKeys") or self.PAGE_SIZE), self.PAGE_SIZE)
        keys = sorted(k for b, k in self.objects if b == bucket and k.startswith(prefix))
        page: list[dict[str, Any]] = []
        for key in keys:
            if key <= after:
                continue
            if delimiter and delimiter in key[len(prefix) :]:
                continue  # grouped under a common prefix: no item
            if len(page) == size:
                return {"Contents": page, "NextContinuationToken": page[-1]["Key"]}
            body = self.objects[(bucket, key)]
            page.append(
                {
                    "Key": key,
                    "LastModified": datetime(2026, 1, 1, tzinfo=UTC),
                    "ETag": f'"{md5(body, usedforsecurity=False).hexdigest()}"',
                    "Size": len(body),
                    "StorageClass": "STANDARD",
                }
            )
        return {"Contents": page}

    def upload(self, bucket: str, key: str) -> Upload:
        """An upload that stores the object when closed."""
        return _MemoryUpload(self, bucket, key)


class _MemoryUpload:
    def __init__(self, store: MemoryObjectStore, bucket: str, key: str) -> None:
        self.store, self.bucket, self.key = store, bucket, key
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def close(self) -> None:
        self.store.calls.append("PutObject")
        self.store.objects[(self.bucket, self.key)] = b"".join(self.parts)

    def abort(self) -> None:
        self.parts = []
