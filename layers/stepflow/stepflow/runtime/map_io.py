"""Where a distributed Map's items come from and where its results go: two small ports.

A map run (see ``StartMapRun``) reads its items through an :class:`ItemSource`
(``ItemReader``: ``s3:getObject`` or ``s3:listObjectsV2``) and writes its
results through a :class:`ResultSink` (``ResultWriter``: ``s3:putObject``).
The AWS implementations live in :mod:`stepflow.integrations` (they call S3 with
the execution's role); in-memory twins serve the tests
(:class:`stepflow.runtime.item_reading.MemoryItemSource`,
:class:`stepflow.runtime.result_writing.MemoryResultSink`). The specs are plain data,
evaluated by the engine on the Map state's input before the run starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol


class ItemReaderError(Exception):
    """The items cannot be read: the Map fails with ``States.ItemReaderFailed`` and ``cause``."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class ResultWriterError(Exception):
    """The results cannot be written: the Map fails with ``States.ResultWriterFailed``."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


@dataclass(frozen=True, slots=True)
class ReaderSpec:
    """An ``ItemReader``, its fields evaluated on the Map state's input.

    ``resource`` is ``arn:aws:states:::s3:getObject`` or ``…:s3:listObjectsV2``;
    ``parameters`` the evaluated ``Parameters``/``Arguments`` (``Bucket``, ``Key``,
    ``Prefix``, ``VersionId``, …); ``reader_config`` the evaluated ``ReaderConfig``
    (``InputType`` JSON, JSONL, CSV or MANIFEST, ``CSVHeaderLocation``, ``CSVHeaders``,
    ``CSVDelimiter``); ``max_items`` the evaluated MaxItems (None: all).
    ``role_arn``/``execution_role``/``execution_arn`` say whose call it is.
    """

    resource: str
    parameters: dict[str, Any]
    reader_config: dict[str, Any] = field(default_factory=dict)
    max_items: int | None = None
    role_arn: str = ""
    execution_role: str = ""
    execution_arn: str = ""


@dataclass(frozen=True, slots=True)
class WriterSpec:
    """A ``ResultWriter``, evaluated.

    ``parameters`` has ``Bucket`` and ``Prefix``; ``writer_config`` is the evaluated
    ``WriterConfig`` (``OutputType``, ``Transformation``). ``map_run_arn`` is the
    run's ARN, written in the manifest's ``MapRunArn``.
    """

    resource: str
    parameters: dict[str, Any]
    writer_config: dict[str, Any] = field(default_factory=dict)
    role_arn: str = ""
    execution_role: str = ""
    execution_arn: str = ""
    map_run_arn: str = ""


class ItemSource(Protocol):
    """Reads a distributed Map's items."""

    def read(self, spec: ReaderSpec) -> Iterator[Any]:
        """The items in order, lazily (at most ``spec.max_items``).

        Raises :class:`ItemReaderError` with AWS's cause when they cannot be read.
        """
        ...


class ResultSink(Protocol):
    """Writes a finished map run's results in AWS's layout."""

    def write(
        self, spec: WriterSpec, map_run_id: str, results: Iterable[dict[str, Any]]
    ) -> dict[str, Any]:
        """Write ``results`` under ``<Prefix>/<map_run_id>/``; return ``ResultWriterDetails``.

        ``results`` has one entry per child execution, in AWS's shape; the details are
        the ``{"Bucket", "Key"}`` of the manifest. Raises :class:`ResultWriterError`.
        """
        ...
