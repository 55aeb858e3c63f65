"""``Map``: runs its item processor once per item of an array."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stepflow.asl.catch import Catcher
from stepflow.asl.retry import Retrier
from stepflow.asl.states.base import MISSING, ROOT_PATH, State
from stepflow.data.jsonpath import Path
from stepflow.data.template import Template

if TYPE_CHECKING:
    from stepflow.asl.machine import Machine


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemReaderDef:
    """A distributed Map's ``ItemReader``, checked; its values are evaluated per run.

    ``parameters`` is the JSONPath ``Parameters`` template (``parameters_raw`` its
    source) or, in JSONata, the raw ``Arguments``. ``reader_config`` is the
    ``ReaderConfig`` without ``MaxItems``/``MaxItemsPath``, which are kept apart
    (a literal or JSONata expression, or a reference path).
    """

    resource: str
    parameters: Template | None = None
    parameters_raw: Any = MISSING
    reader_config: dict[str, Any] = field(default_factory=dict)
    max_items: Any = None
    max_items_path: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemBatcherDef:
    """A distributed Map's ``ItemBatcher``: literals, reference paths or JSONata expressions.

    ``batch_input`` is the JSONPath ``BatchInput`` template (``batch_input_raw`` its
    source, MISSING when absent).
    """

    max_items: Any = None
    max_items_path: Path | None = None
    max_bytes: Any = None
    max_bytes_path: Path | None = None
    batch_input: Template | None = None
    batch_input_raw: Any = MISSING


@dataclass(frozen=True, slots=True, kw_only=True)
class ResultWriterDef:
    """A distributed Map's ``ResultWriter``.

    ``Resource`` with ``Parameters`` (or ``Arguments``), and/or ``WriterConfig``.
    """

    resource: str | None = None
    parameters: Template | None = None
    parameters_raw: Any = MISSING
    writer_config: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MapState(State):
    """A Map state (``Iterator`` is read as ``ItemProcessor``, ``Parameters`` as ``ItemSelector``).

    ``processor_mode`` is ``INLINE`` or ``DISTRIBUTED`` (``execution_type``, for a
    distributed Map, ``STANDARD`` or ``EXPRESS``); ``items`` is the
    JSONata-era counterpart of ``items_path``. The numeric limits are literals,
    reference paths (``…_path``) or JSONata expressions.
    """

    item_processor: Machine
    processor_mode: str = "INLINE"
    items_path: Path | None = ROOT_PATH
    items: Any = MISSING
    item_selector: Template | None = None
    item_selector_raw: Any = MISSING
    max_concurrency: Any = 0
    max_concurrency_path: Path | None = None
    tolerated_failure_percentage: Any = None
    tolerated_failure_percentage_path: Path | None = None
    tolerated_failure_count: Any = None
    tolerated_failure_count_path: Path | None = None
    result_selector: Template | None = None
    result_path: Path | None = ROOT_PATH
    retry: tuple[Retrier, ...] = ()
    catch: tuple[Catcher, ...] = ()
    execution_type: str = "STANDARD"
    item_reader: ItemReaderDef | None = None
    item_batcher: ItemBatcherDef | None = None
    result_writer: ResultWriterDef | None = None
    label: str | None = None
