"""A map run's immutable records: its config and its child inputs, each written once.

The config (the ``StartMapRun`` spec without its items) and the pages of child inputs
(``PAGE_SIZE`` each, after ItemSelector and ItemBatcher) are created when the run
starts and never rewritten, so a child start or the end of the run reads them and
no head carries them. Creating them again (a redelivered start) is a no-op.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from stepflow.asl import StateMachine
from stepflow.engine import map_items
from stepflow.runtime.map_run_state import PAGE_SIZE, page_key
from stepflow.runtime.ports import CoordinationLog, ExecutionAlreadyExistsError, ExecutionRecord

PAGE_STATUS = "MAP_RUN_PAGE"
"""The status of a page or config record (never listed, never running)."""


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One child's input: ``index`` of its first item, ``count`` items, ``input``."""

    index: int
    count: int
    input: Any


def child_inputs(
    definition: StateMachine, spec: dict[str, Any], items: Iterable[Any]
) -> Iterator[ChildSpec]:
    """The children of ``items``, in order (ItemSelector and ItemBatcher applied)."""
    for child in map_items.child_inputs(definition, spec, items):
        yield ChildSpec(int(child.index), int(child.count), child.input)


def write_pages(
    log: CoordinationLog, key: str, children: Iterable[ChildSpec], *, now: float
) -> tuple[int, int]:
    """Write the child inputs in pages (once each); return (children, items)."""
    page: list[list[Any]] = []
    number = children_count = items_count = 0
    for child in children:
        page.append([child.index, child.count, child.input])
        children_count += 1
        items_count += child.count
        if len(page) == PAGE_SIZE:
            _create(log, page_key(key, number), {"inputs": page}, now)
            page, number = [], number + 1
    if page:
        _create(log, page_key(key, number), {"inputs": page}, now)
    return children_count, items_count


def write_config(log: CoordinationLog, key: str, config: dict[str, Any], now: float) -> None:
    """Store the run's spec without its items (once)."""
    _create(log, f"{key}#config", config, now)


def _create(log: CoordinationLog, key: str, state: dict[str, Any], now: float) -> None:
    record = ExecutionRecord(
        execution_arn=key,
        state_machine_arn="",
        name=key.rsplit("/", 1)[-1],
        input=None,
        status=PAGE_STATUS,
        seq=0,
        state=state,
        start_date=now,
        stop_date=now,  # never running; expires with the log's retention (TTL)
        attributes={"listed_under": ""},
    )
    with contextlib.suppress(ExecutionAlreadyExistsError):  # a redelivered start wrote it
        log.create(record, [])


class PageCache:
    """The immutable records read back, the most recent few kept in memory."""

    def __init__(self, log: CoordinationLog, size: int = 32) -> None:
        self.log = log
        self.size = size
        self._cached: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def record(self, key: str) -> dict[str, Any]:
        """The state of immutable record ``key``; KeyError if missing."""
        state = self._cached.get(key)
        if state is None:
            record = self.log.get(key)
            if record is None:
                raise KeyError(key)
            state = self._cached[key] = record.state
            if len(self._cached) > self.size:
                self._cached.popitem(last=False)
        else:
            self._cached.move_to_end(key)
        return state

    def child(self, key: str, position: int) -> ChildSpec:
        """The run's ``position``-th child input."""
        entry = self.record(page_key(key, position // PAGE_SIZE))["inputs"][position % PAGE_SIZE]
        return ChildSpec(int(entry[0]), int(entry[1]), entry[2])

    def config(self, key: str) -> dict[str, Any]:
        """The run's config (its spec without items)."""
        return self.record(f"{key}#config")
