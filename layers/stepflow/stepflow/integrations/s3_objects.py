"""S3 as a map run's reader and writer call it: :class:`S3ObjectStore` over one boto3 client.

Implements :class:`stepflow.runtime.object_store.ObjectStore`: ``GetObject``
streamed in chunks (never read whole), one ``ListObjectsV2`` page per call, and
uploads that stay in memory up to :data:`PART_BYTES` (one ``PutObject``) and
turn into a multipart upload past it (flat memory for any object size). A
failed call raises :class:`~stepflow.runtime.object_store.ObjectStoreError` with
the error name and cause the SDK for Java v2 gives (``S3.NoSuchKeyException``,
``... (Service: S3, Status Code: 404, Request ID: ...)``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from stepflow.integrations.errors import ErrorNames, client_error
from stepflow.runtime.object_store import ObjectStoreError

S3 = ErrorNames(prefix="S3", naming="suffixed", base_exception="S3Exception")
"""``S3.<Shape>Exception`` with the SDK v2 cause."""

CHUNK_BYTES = 256 * 1024
"""Bytes read from an object's body at a time."""

PART_BYTES = 8 * 1024 * 1024
"""An upload's part size (S3's least is 5 MiB); an object up to it is one PutObject."""

T = TypeVar("T")


class S3ObjectStore:
    """The object store of one S3 client (the task role's), made at the first call.

    ``make_client`` makes the client: a read or write refused before any S3
    call (an own bucket, a bad ``MaxItems``) never assumes the role.
    """

    def __init__(self, make_client: Callable[[], Any], part_bytes: int = PART_BYTES) -> None:
        self._make_client = make_client
        self._client: Any = None
        self.part_bytes = part_bytes

    @property
    def client(self) -> Any:
        """The S3 client (made now if not yet)."""
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def get_object(self, parameters: dict[str, Any]) -> Iterator[bytes]:
        """The object's body, chunk by chunk (the call is made before the first chunk)."""
        response = _call(lambda: self.client.get_object(**parameters), self.client)
        body = response["Body"]
        try:
            while True:
                chunk = _call(lambda: body.read(CHUNK_BYTES), self.client)
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    def list_objects(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """One ``ListObjectsV2`` page."""
        page: dict[str, Any] = _call(lambda: self.client.list_objects_v2(**parameters), self.client)
        return page

    def upload(self, bucket: str, key: str) -> S3Upload:
        """A streamed upload of ``bucket``/``key``."""
        return S3Upload(self.client, bucket, key, self.part_bytes)


class S3Upload:
    """Buffers up to one part; past it, a multipart upload sends a part at a time."""

    def __init__(self, client: Any, bucket: str, key: str, part_bytes: int) -> None:
        self.client, self.bucket, self.key = client, bucket, key
        self.part_bytes = part_bytes
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        """Append ``data``; send a part whenever a whole one is buffered."""
        self.buffer += data
        while len(self.buffer) >= self.part_bytes:
            self._send_part(bytes(self.buffer[: self.part_bytes]))
            del self.buffer[: self.part_bytes]

    def close(self) -> None:
        """Put the object (one call), or send the last part and complete the upload."""
        if self.upload_id is None:
            body = bytes(self.buffer)
            _call(
                lambda: self.client.put_object(Bucket=self.bucket, Key=self.key, Body=body),
                self.client,
            )
        else:
            if self.buffer:
                self._send_part(bytes(self.buffer))
            upload_id, parts = self.upload_id, self.parts
            _call(
                lambda: self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                ),
                self.client,
            )
        self.buffer = bytearray()

    def abort(self) -> None:
        """Abort the multipart upload, if one was started (best effort)."""
        if self.upload_id is not None:
            # best effort: the failure being reported matters more
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
                )
            self.upload_id = None
        self.buffer = bytearray()

    def _send_part(self, data: bytes) -> None:
        if self.upload_id is None:
            started = _call(
                lambda: self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key),
                self.client,
            )
            self.upload_id = str(started["UploadId"])
        number = len(self.parts) + 1
        upload_id = self.upload_id
        sent = _call(
            lambda: self.client.upload_part(
                Bucket=self.bucket, Key=self.key, UploadId=upload_id, PartNumber=number, Body=data
            ),
            self.client,
        )
        self.parts.append({"ETag": sent["ETag"], "PartNumber": number})


def _call(call: Callable[[], T], client: Any) -> T:
    """``call()``; a botocore failure raised as :class:`ObjectStoreError` with AWS's texts."""
    try:
        return call()
    except Exception as exc:
        if client_error(exc) is None and not type(exc).__module__.startswith("botocore"):
            raise
        model = getattr(getattr(client, "meta", None), "service_model", None)
        outcome = S3.failure(exc, model)
        if outcome is None:
            raise
        raise ObjectStoreError(str(outcome.cause), str(outcome.error)) from None
