"""The saga's records in the coordination log: its entries, done-markers, compensation journal.

Three kinds of lease records (:mod:`stepflow.runtime.leases`), so the memory
log and the DynamoDB table hold them with no storage code of their own, and a
finished execution's TTL removes them with the rest:

- ``saga#entries`` (``saga#<item>#entries`` for an EXPRESS item): ONE record per
  execution holding what its completed cells need undone, in completion order
  (:class:`SagaEntry`). It is rewritten by compare-and-set on its ``version``
  (retried on a conflict), and an entry is only added if its id is not there,
  so a re-run or a duplicate delivery never adds one twice.
- ``saga#done#<entry id>``: written once (conditional on its absence) after
  the entry's compensation finished; a later compensation skips the entry.
- the compensation's effects: journal records keyed by the entry's attempt and
  the scope ``compensate:<entry id>`` (:class:`CompensationJournal`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from stepflow.cells.effects import IdempotencyKey
from stepflow.cells.journal import EffectRecord, journal_id
from stepflow.data.serialize import dumps, utf8_size
from stepflow.runtime.leases import LeaseConflictError, LeaseLog, TaskLease

MAX_ENTRIES = 1_000
"""At most this many compensations are registered per saga (execution, or EXPRESS item)."""

MAX_RECORD_BYTES = 256 * 1024
"""The saga record's JSON may not grow past this (a state's data limit, 256 KiB)."""

LIMIT_EXCEEDED = "StepFlow.Saga.LimitExceeded"
"""The error of a cell run whose compensations the saga record cannot hold."""

ENTRIES = "entries"
DONE_PREFIX = "saga#done#"


class SagaLimitError(Exception):
    """Registering more compensations would pass :data:`MAX_ENTRIES` or :data:`MAX_RECORD_BYTES`."""

    error = LIMIT_EXCEEDED

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


@dataclass(frozen=True, slots=True)
class SagaEntry:
    """One thing to undo: a completed cell run, or one effect naming its compensation.

    ``kind`` is ``cell`` (``input``/``output`` of the run, compensated by the
    exact ``cell`` version's :meth:`~stepflow.cells.Cell.compensate`) or ``effect``
    (``index`` of the effect in the run; ``effect``/``type``/``request`` of the
    compensating effect). ``cell`` is ``name@version``; ``attempt`` and ``state``
    the task attempt that ran it.
    """

    kind: str
    cell: str
    attempt: str
    state: str
    index: int = 0
    input: Any = None
    output: Any = None
    effect: str | None = None
    type: str | None = None
    request: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        """Unique in the execution: ``<attempt>#cell`` or ``<attempt>#fx<index>``."""
        return f"{self.attempt}#cell" if self.kind == "cell" else f"{self.attempt}#fx{self.index}"

    @property
    def scope(self) -> str:
        """The journal scope of this entry's compensation."""
        return f"compensate:{self.id}"

    def to_json(self) -> dict[str, Any]:
        """The entry as stored in the saga record."""
        data: dict[str, Any] = {
            "kind": self.kind,
            "cell": self.cell,
            "attempt": self.attempt,
            "state": self.state,
        }
        if self.kind == "cell":
            data["input"], data["output"] = self.input, self.output
        else:
            data["index"] = self.index
            data["effect"], data["type"], data["request"] = self.effect, self.type, self.request
        return data

    @classmethod
    def from_json(cls, data: Any) -> SagaEntry:
        """A stored entry read back; ValueError if it is not one."""
        if not isinstance(data, dict) or data.get("kind") not in ("cell", "effect"):
            raise ValueError(f"not a saga entry: {str(data)[:200]}")
        request = data.get("request")
        return cls(
            kind=str(data["kind"]),
            cell=str(data.get("cell", "")),
            attempt=str(data.get("attempt", "")),
            state=str(data.get("state", "")),
            index=int(data.get("index", 0)),
            input=data.get("input"),
            output=data.get("output"),
            effect=None if data.get("effect") is None else str(data["effect"]),
            type=None if data.get("type") is None else str(data["type"]),
            request=request if isinstance(request, dict) else None,
        )


def saga_partition(attempt: str) -> str:
    """Which saga an attempt belongs to: the execution's (``""``) or an EXPRESS item's.

    The items of an EXPRESS batch share the map run's ARN; their attempt ids are
    ``express/<redrive>/<index>/<task id>``, so each item (of each redrive) has a saga.
    """
    if attempt.startswith("express/"):
        parts = attempt.split("/")
        if len(parts) >= 4:
            return "/".join(parts[:3])
    return ""


def entries_id(partition: str) -> str:
    """The lease-record id of a saga's entries."""
    return f"saga#{partition}#{ENTRIES}" if partition else f"saga#{ENTRIES}"


@dataclass(frozen=True, slots=True)
class SagaLog:
    """A saga's records on a coordination log's lease records."""

    log: LeaseLog
    execution_arn: str
    partition: str = ""

    def entries(self) -> list[SagaEntry]:
        """The registered entries, in completion order."""
        lease = self.log.lease(self.execution_arn, entries_id(self.partition))
        return _entries(lease)

    def add(self, new: list[SagaEntry]) -> int:
        """Register the entries of ``new`` not registered yet; how many were added.

        One read, and one conditional write only if something is new (retried when
        another writer moved the record on). Raises :class:`SagaLimitError` past the limits.
        """
        task_id = entries_id(self.partition)
        lease = self.log.lease(self.execution_arn, task_id)
        while True:
            stored = _entries(lease)
            known = {entry.id for entry in stored}
            added: list[SagaEntry] = []
            for entry in new:
                if entry.id not in known:
                    known.add(entry.id)
                    added.append(entry)
            if not added:
                return 0
            result = {"entries": [entry.to_json() for entry in (*stored, *added)]}
            _check_limits(len(stored) + len(added), result)
            held = lease or TaskLease(self.execution_arn, task_id)
            try:
                self.log.put_lease(held.next(result=result))
            except LeaseConflictError:
                lease = self.log.lease(self.execution_arn, task_id)
                continue
            return len(added)

    def done(self, entry: SagaEntry) -> bool:
        """True once ``entry``'s compensation finished."""
        return self.log.lease(self.execution_arn, DONE_PREFIX + entry.id) is not None

    def mark_done(self, entry: SagaEntry, effects: int) -> None:
        """Record that ``entry``'s compensation finished (once; a second marker is a no-op)."""
        marker = TaskLease(
            self.execution_arn, DONE_PREFIX + entry.id, version=1, result={"effects": effects}
        )
        with contextlib.suppress(LeaseConflictError):  # a duplicate compensation was first
            self.log.put_lease(marker)


def _entries(lease: TaskLease | None) -> list[SagaEntry]:
    """The entries of a stored saga record; ValueError if it is not one."""
    if lease is None:
        return []
    stored = lease.result.get("entries") if isinstance(lease.result, dict) else None
    if not isinstance(stored, list):
        raise ValueError(f"{lease.task_id} is not a saga record: {str(lease.result)[:200]}")
    try:
        return [SagaEntry.from_json(item) for item in stored]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{lease.task_id} holds an entry that is not one: {exc}") from exc


def _check_limits(count: int, result: dict[str, Any]) -> None:
    if count > MAX_ENTRIES:
        raise SagaLimitError(
            f"The saga would hold {count} compensations; at most {MAX_ENTRIES} are kept per "
            "execution. Compensate (stepflow:saga:compensate) before running more cells that "
            "register compensations, or split the work into child executions."
        )
    size = utf8_size(dumps(result))
    if size > MAX_RECORD_BYTES:
        raise SagaLimitError(
            f"The saga record would be {size} bytes; at most {MAX_RECORD_BYTES} are kept per "
            "execution. A cell that overrides compensate has its input and output kept until "
            "compensated: keep them small (refer to large data by key)."
        )


@dataclass(frozen=True, slots=True)
class CompensationJournal:
    """The journal of compensations: successful effects replayed, failed ones tried again.

    A compensation that failed is run again by the next compensate task (a Retry
    of its state); its effects that succeeded are replayed from their records,
    and the effect that failed is performed again, its record rewritten (the next
    version of the lease record, conditional on the failed one).
    """

    log: LeaseLog

    def recorded(self, key: IdempotencyKey) -> EffectRecord | None:
        """The successful record of ``key``, or None (no record, or a failure)."""
        lease = self.log.lease(key.execution_arn, journal_id(key))
        if lease is None or lease.result is None:
            return None
        record = EffectRecord.from_json(lease.result)
        return record if record.ok else None

    def record(self, key: IdempotencyKey, record: EffectRecord) -> EffectRecord:
        """Store ``record`` unless a successful one exists (which is returned)."""
        lease = TaskLease(key.execution_arn, journal_id(key), version=1, result=record.to_json())
        while True:
            try:
                self.log.put_lease(lease)
            except LeaseConflictError:
                stored = self.log.lease(key.execution_arn, journal_id(key))
                if stored is None or stored.result is None:
                    raise
                previous = EffectRecord.from_json(stored.result)
                if previous.ok:
                    return previous
                lease = stored.next(result=record.to_json())
                continue
            return record
