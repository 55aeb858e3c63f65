"""``Map``: runs its item processor once per item of an array."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stepflow.asl.catch import Catcher
from stepflow.asl.retry import Retrier
from stepflow.asl.states.base import MISSING, ROOT_PATH, State
from stepflow.data.jsonpath import Path
from stepflow.data.template import Template

if TYPE_CHECKING:
    from stepflow.asl.machine import Machine


@dataclass(frozen=True, slots=True, kw_only=True)
class MapState(State):
    """A Map state (``Iterator`` is read as ``ItemProcessor``, ``Parameters`` as ``ItemSelector``).

    ``processor_mode`` is ``INLINE`` or ``DISTRIBUTED``; ``items`` is the
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
    item_reader: Any = None
    item_batcher: Any = None
    result_writer: Any = None
    label: str | None = None
