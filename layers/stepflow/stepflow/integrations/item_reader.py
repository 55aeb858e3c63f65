"""The ``ItemReader`` of a distributed Map on S3, with the task's role.

:class:`S3ItemSource` implements :class:`stepflow.runtime.map_io.ItemSource`:
for each read it takes the S3 client of the reader's role (``clients.for_task``,
assumed through the execution's role as a task's is) and reads through
:class:`~stepflow.runtime.item_reading.StoreItemSource` (formats, paging,
``MaxItems``, the own-resource guard). A refused role or an S3 error fails the
read with :class:`~stepflow.runtime.map_io.ItemReaderError` and AWS's cause.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from stepflow.integrations.s3_objects import S3ObjectStore
from stepflow.runtime.clients import TaskCallRefused, TaskClients
from stepflow.runtime.item_reading import StoreItemSource
from stepflow.runtime.map_io import ItemReaderError, ReaderSpec
from stepflow.runtime.targets import OwnResources


class S3ItemSource:
    """Reads a distributed Map's items from S3 as the reader's role."""

    def __init__(
        self, clients: TaskClients, own: OwnResources | None = None, region: str | None = None
    ) -> None:
        self.clients = clients
        self.own = own
        self.region = region

    def read(self, spec: ReaderSpec) -> Iterator[Any]:
        """The items of ``spec`` (see :class:`~stepflow.runtime.item_reading.StoreItemSource`)."""

        def client() -> Any:
            return s3_client(
                self.clients,
                spec.role_arn,
                spec.execution_role,
                spec.execution_arn,
                self.region,
                ItemReaderError,
            )

        return StoreItemSource(S3ObjectStore(client), self.own).read(spec)


def s3_client(
    clients: TaskClients,
    role_arn: str,
    execution_role: str,
    execution_arn: str,
    region: str | None,
    error: type[Exception],
) -> Any:
    """The S3 client of ``role_arn`` (through ``execution_role``); a refusal raises ``error``."""
    from botocore.exceptions import BotoCoreError

    try:
        return clients.for_task(
            "s3", role_arn or execution_role, region, execution=execution_arn, via=execution_role
        )
    except TaskCallRefused as exc:
        raise error(exc.cause) from None
    except BotoCoreError as exc:
        raise error(f"StepFlow could not make the s3 client: {exc}") from None
