"""The EventBridge hook: "Step Functions Execution Status Change" events on a bus.

Each execution status change (started, succeeded, failed, timed out, aborted,
redriven) becomes one PutEvents entry whose ``detail`` is AWS's
(:mod:`stepflow.hooks.status_change`), ``detail-type`` AWS's, ``resources`` the
execution ARN and ``time`` the history event's timestamp. The ``source`` is
configurable: EventBridge refuses ``aws.*`` sources from an account, so the
default is ``stepflow.states`` (a rule written for Step Functions matches once its
``source`` names it; ``detail-type`` and ``detail`` match unchanged).

As on AWS, EXPRESS executions send no such events unless ``express`` is set.
Each entry is made to fit EventBridge's 256 KB whatever the execution's data
(:func:`~stepflow.hooks.status_change.fit_detail`: input, then output left out,
then the cause cut short). Entries go in PutEvents calls of at most 10 entries and
256 KB; entries that
fail (``FailedEntryCount``) are sent again, ``attempts`` times in all with
exponential backoff, then :class:`EventBridgeDeliveryError` is raised (the
stream delivers the batch again). A status change already put by this process
is not put again (the stream delivers at least once).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from stepflow.hooks.events import HookEvent, HookKind
from stepflow.hooks.status_change import (
    DEFAULT_SOURCE,
    DETAIL_TYPE,
    STATUS_OF,
    fit_detail,
    status_change_detail,
)
from stepflow.hooks.support import ExecutionFacts, FactsLookup, RecentKeys, epoch_seconds

MAX_ENTRIES = 10
"""PutEvents takes at most 10 entries per call."""
MAX_REQUEST_BYTES = 256 * 1024
"""PutEvents takes at most 256 KB of entries per call (and per entry)."""
_TIME_BYTES = 14
"""How much an entry's ``Time`` counts towards its size (EventBridge's rule)."""


class EventBridgeDeliveryError(Exception):
    """Entries still failed after the last attempt; ``errors`` has their error codes."""

    def __init__(self, errors: list[str], unsent: list[int]) -> None:
        super().__init__(f"PutEvents failed for {len(errors)} entr(ies): {sorted(set(errors))}")
        self.errors = errors
        self.unsent = unsent
        """Indexes of the entries not put (failed, or in a later call never made)."""


def entry_size(entry: dict[str, Any]) -> int:
    """An entry's size as EventBridge counts it (UTF-8 bytes of its fields, 14 for Time)."""
    size = _TIME_BYTES if "Time" in entry else 0
    for key in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(key, "")).encode())
    size += sum(len(r.encode()) for r in entry.get("Resources", []))
    return size


def batches(entries: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``entries`` in PutEvents calls: at most 10 each and 256 KB in all."""
    out: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for entry in entries:
        this = entry_size(entry)
        if current and (len(current) >= MAX_ENTRIES or size + this > MAX_REQUEST_BYTES):
            out.append(current)
            current, size = [], 0
        current.append(entry)
        size += this
    if current:
        out.append(current)
    return out


class EventBridgeHook:
    """:class:`~stepflow.hooks.Hook` putting status change events on ``bus`` (module doc)."""

    name = "eventbridge"
    kinds: frozenset[HookKind] | None = frozenset(STATUS_OF)

    def __init__(
        self,
        client: Any,
        bus: str = "default",
        *,
        source: str = DEFAULT_SOURCE,
        facts: FactsLookup | None = None,
        express: bool = False,
        attempts: int = 3,
        base_delay: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.bus = bus
        self.source = source
        self.facts = facts
        self.express = express
        self.attempts = max(1, attempts)
        self.base_delay = base_delay
        self._sleep = sleep
        self._recent = RecentKeys()

    def handle(self, events: Sequence[HookEvent]) -> None:
        """Put one entry per status change of ``events`` (repeats dropped)."""
        wanted = [
            e
            for e in events
            if e.kind in STATUS_OF and (self.express or e.execution.execution_type == "STANDARD")
        ]
        fresh = list(self._recent.fresh(wanted))
        if not fresh:
            return
        entries = self.entries(fresh)
        try:
            self._put(entries)
        except EventBridgeDeliveryError as exc:
            self._recent.forget(fresh[i] for i in exc.unsent)  # a redelivery must put them
            raise
        except Exception:
            self._recent.forget(fresh)
            raise

    def entries(self, events: Sequence[HookEvent]) -> list[dict[str, Any]]:
        """The PutEvents entries of ``events`` (status changes), in order."""
        starts = {e.execution.execution_arn: e for e in events if e.kind == "ExecutionStarted"}
        facts: dict[str, ExecutionFacts | None] = {}
        redrives: dict[str, Any] = {}
        out = []
        for event in events:
            arn = event.execution.execution_arn
            if event.kind == "ExecutionRedriven":
                redrives[arn] = event.timestamp
            start = starts.get(arn)
            known: ExecutionFacts | None = None
            need_start = start is None and event.kind != "ExecutionStarted"
            need_redrive = bool(event.execution.redrive_count) and arn not in redrives
            if (need_start or need_redrive) and self.facts is not None:
                if arn not in facts:
                    facts[arn] = self.facts(arn)  # one read per execution per batch
                known = facts[arn]
            detail = status_change_detail(
                event, start=start, facts=known, redrive_date=redrives.get(arn)
            )
            seconds = epoch_seconds(event.timestamp)
            entry: dict[str, Any] = {
                "Source": self.source,
                "DetailType": DETAIL_TYPE,
                "Detail": "",
                "Resources": [arn],
                "EventBusName": self.bus,
            }
            if seconds is not None:
                entry["Time"] = datetime.fromtimestamp(seconds, UTC)
            room = MAX_REQUEST_BYTES - entry_size(entry)  # the other fields count too
            entry["Detail"] = json.dumps(fit_detail(detail, room), separators=(",", ":"))
            out.append(entry)
        return out

    def _put(self, entries: list[dict[str, Any]]) -> None:
        indexed = list(enumerate(entries))
        groups = batches([e for _, e in indexed])
        done = 0
        for group in groups:
            pending = indexed[done : done + len(group)]
            done += len(group)
            errors: list[str] = []
            for attempt in range(self.attempts):
                if attempt:
                    self._sleep(self.base_delay * 2 ** (attempt - 1))
                response = self.client.put_events(Entries=[e for _, e in pending])
                if not response.get("FailedEntryCount"):
                    pending = []
                    break
                results = response.get("Entries", [])
                errors = [str(r.get("ErrorCode")) for r in results if r.get("ErrorCode")]
                pending = [p for p, r in zip(pending, results, strict=False) if r.get("ErrorCode")]
                if not pending:
                    break
            if pending:
                unsent = [i for i, _ in pending] + [i for i, _ in indexed[done:]]
                raise EventBridgeDeliveryError(errors, unsent)
