"""The ``ResultWriter`` of a distributed Map on S3, with the task's role.

:class:`S3ResultSink` implements :class:`stepflow.runtime.map_io.ResultSink`
through :class:`~stepflow.runtime.result_writing.StoreResultSink` (AWS's layout,
streamed: every result file is written part by part, see
:class:`~stepflow.integrations.s3_objects.S3Upload`). A refused role or an S3
error raises :class:`~stepflow.runtime.map_io.ResultWriterError` with AWS's cause.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from stepflow.integrations.item_reader import s3_client
from stepflow.integrations.s3_objects import PART_BYTES, S3ObjectStore
from stepflow.runtime.clients import TaskClients
from stepflow.runtime.map_io import ResultWriterError, WriterSpec
from stepflow.runtime.result_writing import MAX_RESULT_FILE_BYTES, StoreResultSink
from stepflow.runtime.targets import OwnResources


class S3ResultSink:
    """Writes a finished map run's results to S3 as the writer's role."""

    def __init__(
        self,
        clients: TaskClients,
        own: OwnResources | None = None,
        region: str | None = None,
        max_file_bytes: int = MAX_RESULT_FILE_BYTES,
        part_bytes: int = PART_BYTES,
    ) -> None:
        self.clients = clients
        self.own = own
        self.region = region
        self.max_file_bytes = max_file_bytes
        self.part_bytes = part_bytes

    def write(
        self, spec: WriterSpec, map_run_id: str, results: Iterable[dict[str, Any]]
    ) -> dict[str, Any]:
        """Write ``results`` under ``<Prefix>/<map_run_id>/``; the manifest's ``{Bucket, Key}``."""

        def client() -> Any:
            return s3_client(
                self.clients,
                spec.role_arn,
                spec.execution_role,
                spec.execution_arn,
                self.region,
                ResultWriterError,
            )

        store = S3ObjectStore(client, self.part_bytes)
        return StoreResultSink(store, self.own, self.max_file_bytes).write(
            spec, map_run_id, results
        )
