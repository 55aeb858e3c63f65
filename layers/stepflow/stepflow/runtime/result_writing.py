"""A distributed Map's ``ResultWriter`` over any object store.

:class:`StoreResultSink` implements the :class:`~stepflow.runtime.map_io.ResultSink`
port in AWS's layout, under ``<Prefix>/<map run id>/``:

- ``SUCCEEDED_<n>.json``, ``FAILED_<n>.json``, ``PENDING_<n>.json`` (n from 0):
  the child executions of each status, each file at most :data:`MAX_RESULT_FILE_BYTES`
  (a file is started when the next entry would pass it). A status with no
  execution has no file. ``FAILED`` holds every unsuccessful child (failed,
  timed out, aborted); ``PENDING`` those that never ran.
- ``manifest.json``: ``{"DestinationBucket", "MapRunArn", "ResultFiles":
  {"FAILED": [{"Key", "Size"}…], "PENDING": […], "SUCCEEDED": […]}}``.

``WriterConfig.OutputType`` ``JSON`` (default: each file a JSON array) or
``JSONL`` (one value per line); ``Transformation`` ``NONE`` (default: each entry
as given, the child's metadata with ``Input``/``Output`` as JSON text),
``COMPACT`` (each child's output, parsed; a failed child's ``{"Error", "Cause"}``)
or ``FLATTEN`` (as COMPACT, an array output's elements one by one).

Results are streamed: each file is written through an upload as entries come,
so memory stays flat whatever the number of children.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any

from stepflow.runtime.map_io import ResultWriterError, WriterSpec
from stepflow.runtime.object_store import MemoryObjectStore, ObjectStore, ObjectStoreError, Upload
from stepflow.runtime.targets import OWN_TARGET_CAUSE, OwnResources

MAX_RESULT_FILE_BYTES = 5 * 1024**3
"""AWS's largest result file (5 GB); past it the results go on in the next file."""

STATUSES = ("FAILED", "PENDING", "SUCCEEDED")
"""The result files' statuses, in the manifest's order."""

_FAILED_STATUSES = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})


class StoreResultSink:
    """Writes results through an object store (see the module docstring)."""

    def __init__(
        self,
        store: ObjectStore,
        own: OwnResources | None = None,
        max_file_bytes: int = MAX_RESULT_FILE_BYTES,
    ) -> None:
        self.store = store
        self.own = own or OwnResources()
        self.max_file_bytes = max_file_bytes

    def write(
        self, spec: WriterSpec, map_run_id: str, results: Iterable[dict[str, Any]]
    ) -> dict[str, Any]:
        """Write ``results`` and the manifest; return ``{"Bucket", "Key"}`` of the manifest."""
        parameters = spec.parameters if isinstance(spec.parameters, dict) else {}
        bucket = parameters.get("Bucket")
        if not isinstance(bucket, str) or not bucket:
            raise ResultWriterError("The ResultWriter's Bucket must be a non-empty string.")
        if self.own.owns("bucket", bucket):
            raise ResultWriterError(f"{OWN_TARGET_CAUSE}: bucket {bucket!r}")
        prefix = parameters.get("Prefix")
        base = f"{prefix}/{map_run_id}/" if prefix else f"{map_run_id}/"
        config = spec.writer_config or {}
        output_type = config.get("OutputType", "JSON")
        transformation = config.get("Transformation", "NONE")
        if output_type not in ("JSON", "JSONL"):
            raise ResultWriterError(f"Unsupported OutputType value '{output_type}'.")
        if transformation not in ("NONE", "COMPACT", "FLATTEN"):
            raise ResultWriterError(f"Unsupported Transformation value '{transformation}'.")
        files = {
            s: _ResultFiles(self.store, bucket, f"{base}{s}_", output_type, self.max_file_bytes)
            for s in STATUSES
        }
        try:
            for entry in results:
                status = _status(entry)
                for value in _transformed(entry, status, transformation):
                    files[status].add(value)
            for status in STATUSES:
                files[status].close()
            manifest = {
                "DestinationBucket": bucket,
                "MapRunArn": spec.map_run_arn or map_run_id,
                "ResultFiles": {s: files[s].written for s in STATUSES},
            }
            key = f"{base}manifest.json"
            upload = self.store.upload(bucket, key)
            upload.write(json.dumps(manifest, separators=(",", ":")).encode())
            upload.close()
        except ObjectStoreError as exc:
            for status in STATUSES:
                files[status].abort()
            raise ResultWriterError(exc.cause) from None
        except BaseException:  # the results failed: leave no multipart upload open
            for status in STATUSES:
                files[status].abort()
            raise
        return {"Bucket": bucket, "Key": key}


class _ResultFiles:
    """The files of one status: ``<base><n>.json``, each closed before it would pass the bound."""

    def __init__(
        self, store: ObjectStore, bucket: str, base: str, output_type: str, limit: int
    ) -> None:
        self.store, self.bucket, self.base = store, bucket, base
        self.jsonl = output_type == "JSONL"
        self.limit = limit
        self.written: list[dict[str, Any]] = []
        self.upload: Upload | None = None
        self.key = ""
        self.size = 0

    def add(self, value: Any) -> None:
        data = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        extra = 1  # "," or "]" (JSON), "\n" (JSONL)
        if self.upload is not None and self.size + len(data) + extra > self.limit:
            self.close()
        if self.upload is None:
            self.key = f"{self.base}{len(self.written)}.json"
            self.upload = self.store.upload(self.bucket, self.key)
            self.size = 0
            if not self.jsonl:
                self._put(b"[")
        elif not self.jsonl:
            self._put(b",")
        self._put(data)
        if self.jsonl:
            self._put(b"\n")

    def close(self) -> None:
        if self.upload is None:
            return
        if not self.jsonl:
            self._put(b"]")
        self.upload.close()
        self.written.append({"Key": self.key, "Size": self.size})
        self.upload = None

    def abort(self) -> None:
        if self.upload is not None:
            self.upload.abort()
            self.upload = None

    def _put(self, data: bytes) -> None:
        assert self.upload is not None
        self.upload.write(data)
        self.size += len(data)


def _status(entry: dict[str, Any]) -> str:
    status = str(entry.get("Status") or "PENDING")
    if status == "SUCCEEDED":
        return "SUCCEEDED"
    if status in _FAILED_STATUSES:
        return "FAILED"
    return "PENDING"


def _transformed(entry: dict[str, Any], status: str, transformation: str) -> Iterator[Any]:
    if transformation == "NONE":
        yield entry
        return
    if status != "SUCCEEDED":
        yield {k: entry[k] for k in ("Error", "Cause") if k in entry}
        return
    output = entry.get("Output")
    if isinstance(output, str):
        with contextlib.suppress(ValueError):
            output = json.loads(output)
    if transformation == "FLATTEN" and isinstance(output, list):
        yield from output
    else:
        yield output


class MemoryResultSink(StoreResultSink):
    """Writes results into a dict keyed by ``(bucket, key)`` (tests, in-memory driver)."""

    def __init__(
        self,
        objects: MutableMapping[tuple[str, str], bytes] | None = None,
        own: OwnResources | None = None,
        max_file_bytes: int = MAX_RESULT_FILE_BYTES,
    ) -> None:
        super().__init__(MemoryObjectStore(objects), own, max_file_bytes)
