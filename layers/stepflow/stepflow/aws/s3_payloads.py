"""The payload store on S3: one object per payload, ``<prefix><sha256 hex>``.

Objects are immutable and content-addressed, so a retried ``put`` rewrites the
same bytes under the same key, and a ``get`` checks the bytes against the key.
The bucket (private, encrypted; see :mod:`stepflow.aws.topology`) is named by
``PAYLOAD_BUCKET`` in the Lambda environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import boto3

from stepflow.aws.topology import PAYLOAD_BUCKET_ENV_VAR, PAYLOAD_PREFIX
from stepflow.runtime.payloads import (
    PayloadCorruptError,
    PayloadNotFoundError,
    PayloadStoreUnavailableError,
    check_key,
    content_key,
    verified,
)

_MISSING = ("NoSuchKey", "404", "NotFound")


class S3PayloadStore:
    """A :class:`~stepflow.runtime.payloads.PayloadStore` in an S3 bucket."""

    def __init__(self, bucket: str, *, client: Any = None, prefix: str = PAYLOAD_PREFIX) -> None:
        if not bucket:
            raise ValueError("S3PayloadStore needs a bucket name")
        self.bucket = bucket
        self.prefix = prefix
        self._client: Any = client or boto3.client("s3")

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str], *, client: Any = None
    ) -> S3PayloadStore | None:
        """The store of the bucket named by ``PAYLOAD_BUCKET``, or None if it is unset."""
        bucket = environ.get(PAYLOAD_BUCKET_ENV_VAR, "")
        return cls(bucket, client=client) if bucket else None

    def put(self, data: bytes) -> str:
        """Write ``data`` under its SHA-256 (a plain put: a key always holds the same bytes)."""
        key = content_key(data)
        self._call(
            "put_object",
            Bucket=self.bucket,
            Key=self.prefix + key,
            Body=data,
            ContentType="application/octet-stream",
        )
        return key

    def get(self, key: str) -> bytes:
        """The object's bytes, checked against ``key``."""
        response = self._call("get_object", Bucket=self.bucket, Key=self.prefix + check_key(key))
        try:
            data: bytes = response["Body"].read()
        except Exception as exc:  # the connection broke while streaming the body
            raise PayloadStoreUnavailableError(f"S3 read of {key} failed: {exc}") from exc
        return verified(key, data)

    def get_at_most(self, key: str, max_bytes: int) -> bytes:
        """The object's first ``max_bytes + 1`` bytes at most (a ranged GET), unchecked.

        One byte more than allowed tells the caller the object is too large without
        downloading it (:func:`~stepflow.runtime.payloads.read_at_most` checks it).
        """
        try:
            response = self._call(
                "get_object",
                Bucket=self.bucket,
                Key=self.prefix + check_key(key),
                Range=f"bytes=0-{max(max_bytes, 0)}",
            )
        except PayloadStoreUnavailableError as exc:
            # S3 answers a range over an empty object with 416 InvalidRange: the object
            # was replaced (a stored body is never empty), not an outage
            if _error_code(exc.__cause__) == "InvalidRange":
                raise PayloadCorruptError(f"the payload stored under {key!r} is empty") from exc
            raise
        stream = response["Body"]
        try:
            data: bytes = stream.read(max(max_bytes, 0) + 1)
        except Exception as exc:  # the connection broke while streaming the body
            raise PayloadStoreUnavailableError(f"S3 read of {key} failed: {exc}") from exc
        finally:
            stream.close()
        return data

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response: dict[str, Any] = getattr(self._client, operation)(**kwargs)
            return response
        except Exception as exc:
            code = _error_code(exc)
            if operation == "get_object" and code in _MISSING:
                raise PayloadNotFoundError(kwargs["Key"].removeprefix(self.prefix)) from exc
            kind = type(exc)
            if kind.__module__.startswith("botocore") and kind.__name__ != "ParamValidationError":
                raise PayloadStoreUnavailableError(f"S3 {operation} failed: {exc}") from exc
            raise


def _error_code(exc: BaseException | None) -> str:
    """The AWS error code of a botocore ``ClientError`` ('' for anything else)."""
    return str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))
