"""The saga's records in the coordination log: its entries, done-markers, compensation journal.

Three kinds of lease records (:mod:`stepflow.runtime.leases`), so the memory
log and the DynamoDB table hold them with no storage code of their own, and a
finished execution's TTL removes them with the rest:

- ``saga#entries`` (``saga#express/<item>#entries`` for an EXPRESS item): ONE record per
  execution holding what its completed cells need undone, in completion order
  (:class:`SagaEntry`). It is rewritten by compare-and-set on its ``version``
  (retried on a conflict), and an entry is only added if its id is not there,
  so a re-run or a duplicate delivery never adds one twice.
- ``saga#done#<entry id>``: written once (conditional on its absence) after
  the entry's compensation finished; a later compensation skips the entry.
- ``saga#run#<entry id>``: the claim of the compensate task running the entry
  (``owner`` = its attempt, ``until``), so two compensate tasks at once never both
  run one compensation (the second fails with ``StepFlow.Saga.Busy``).
- the compensation's effects: journal records keyed by the entry's attempt and
  the scope ``compensate:<entry id>`` (:class:`CompensationJournal`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stepflow.cells.context import RunRefused
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

INVALID_ENTRY = "StepFlow.Saga.InvalidEntry"
"""A recorded compensation that cannot be rebuilt (its data no longer validates)."""

ENTRIES = "entries"
SEALS = "seals"
DONE_PREFIX = "saga#done#"
RUN_PREFIX = "saga#run#"


class SagaLimitError(RunRefused):
    """Registering more compensations would pass :data:`MAX_ENTRIES` or :data:`MAX_RECORD_BYTES`."""

    error = LIMIT_EXCEEDED


class SagaRecordError(RunRefused):
    """The stored saga record is damaged: nothing is added to it."""

    error = INVALID_ENTRY


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
    frame: str = ""
    """The path of the Parallel branches and Map iterations the run was in ("": top level)."""

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
        if self.frame:
            data["frame"] = self.frame
        return data

    def within(self, frame: str) -> bool:
        """True when the run was in ``frame`` or a branch or iteration nested in it."""
        return not frame or self.frame == frame or self.frame.startswith(frame + "/")

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
            frame=str(data.get("frame") or ""),
        )


def saga_partition(attempt: str) -> str:
    """Which saga an attempt belongs to: the execution's (``""``) or an EXPRESS item's.

    The items of an EXPRESS batch share the map run's ARN; their attempt ids are
    ``express/<redrive>/<index>/<task id>``, so each item has a saga: ``express/<index>``.
    The redrive stays in the journal keys only (a redriven item performs its cells
    again), not in the saga, so a compensate after a redrive also undoes what the
    item's cells did before it.
    """
    if attempt.startswith("express/"):
        parts = attempt.split("/")
        if len(parts) >= 4:
            return f"express/{parts[2]}"
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

    def room(self) -> None:
        """Raise :class:`SagaLimitError` when the record is full (checked before an effect runs)."""
        stored = self.entries()
        if stored:
            result = {"entries": [entry.to_json() for entry in stored]}
            _check_limits(len(stored) + 1, result)

    def add(self, new: list[SagaEntry], *, bounded: bool = True) -> list[SagaEntry]:
        """Register the entries of ``new`` not registered yet; those added that are *late*.

        One read, and one conditional write only if something is new (retried when
        another writer moved the record on). Raises :class:`SagaLimitError` past the
        limits, unless not ``bounded``: an effect that happened is never left out (its
        room was checked before it ran, :meth:`room`). An entry is late when a
        compensate task of its frame (or an enclosing one) scheduled after its run
        already sealed the saga (:meth:`seal`): that task did not see it, so the
        caller must run its compensation at once.
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
                return []
            seals = _seals(lease)
            result: dict[str, Any] = {"entries": [e.to_json() for e in (*stored, *added)]}
            if seals:
                result[SEALS] = seals
            if bounded:
                _check_limits(len(stored) + len(added), result)
            held = lease or TaskLease(self.execution_arn, task_id)
            try:
                self.log.put_lease(held.next(result=result))
            except LeaseConflictError:
                lease = self.log.lease(self.execution_arn, task_id)
                continue
            return [entry for entry in added if _sealed(seals, entry)]

    def seal(self, frame: str, attempt: str) -> list[SagaEntry]:
        """Seal ``frame`` for the runs scheduled before compensate ``attempt``; the entries.

        The seal and the entries are one record, written by compare-and-set: a run
        registering after this sees the seal (:meth:`add` calls it late), one before
        is among the entries returned. An attempt id that is not a task id (``t<n>``)
        seals nothing.
        """
        task_id = entries_id(self.partition)
        mark = attempt_mark(attempt)
        while True:
            lease = self.log.lease(self.execution_arn, task_id)
            stored = _entries(lease)
            seals = _seals(lease)
            if mark is None or seals.get(frame, [-1]) >= mark:
                return stored
            seals[frame] = mark
            result = {"entries": [entry.to_json() for entry in stored], SEALS: seals}
            try:
                self.log.put_lease(
                    (lease or TaskLease(self.execution_arn, task_id)).next(result=result)
                )
            except LeaseConflictError:
                continue
            return stored

    def claim(self, entry: SagaEntry, owner: str, now: float, seconds: float) -> TaskLease | None:
        """Claim ``entry``'s compensation for ``owner`` until ``now + seconds``.

        None when claimed (or already ``owner``'s: a redelivery of the same task);
        else the live claim of another owner, which must not run it too.
        """
        task_id = RUN_PREFIX + entry.id
        while True:
            lease = self.log.lease(self.execution_arn, task_id)
            if lease is not None and lease.owner != owner and lease.live(now):
                return lease
            held = lease or TaskLease(self.execution_arn, task_id)
            try:
                self.log.put_lease(held.next(owner=owner, until=now + seconds, released=False))
            except LeaseConflictError:
                continue
            return None

    def release(self, entry: SagaEntry, owner: str) -> None:
        """Give up ``owner``'s claim on ``entry`` (its compensation failed: a Retry may run it)."""
        task_id = RUN_PREFIX + entry.id
        lease = self.log.lease(self.execution_arn, task_id)
        if lease is not None and lease.owner == owner and not lease.released:
            with contextlib.suppress(LeaseConflictError):  # taken over meanwhile
                self.log.put_lease(lease.next(released=True))

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
        raise SagaRecordError(f"{lease.task_id} is not a saga record: {str(lease.result)[:200]}")
    try:
        return [SagaEntry.from_json(item) for item in stored]
    except (TypeError, ValueError) as exc:
        raise SagaRecordError(f"{lease.task_id} holds an entry that is not one: {exc}") from exc


def attempt_mark(attempt: str) -> list[int] | None:
    """When an attempt was scheduled: ``[redrive, n]`` of ``t<n>`` (``express/<r>/<i>/t<n>``).

    Task ids count up in an execution (and in an EXPRESS item, from each redrive on).
    """
    redrive, task = 0, attempt
    if attempt.startswith("express/"):
        parts = attempt.split("/")
        if len(parts) < 4 or not parts[1].isdigit():
            return None
        redrive, task = int(parts[1]), parts[-1]
    if len(task) < 2 or task[0] != "t" or not task[1:].isdigit():
        return None
    return [redrive, int(task[1:])]


def _seals(lease: TaskLease | None) -> dict[str, list[int]]:
    """The seals of a stored saga record: frame -> the latest compensate's mark."""
    result = None if lease is None else lease.result
    seals = result.get(SEALS) if isinstance(result, dict) else None
    if not isinstance(seals, dict):
        return {}
    return {
        str(frame): [int(x) for x in mark]
        for frame, mark in seals.items()
        if isinstance(mark, list) and len(mark) == 2 and all(isinstance(x, int) for x in mark)
    }


def _sealed(seals: dict[str, list[int]], entry: SagaEntry) -> bool:
    """True when a compensate of the entry's frame (or an enclosing one) came after its run."""
    mark = attempt_mark(entry.attempt)
    return mark is not None and any(
        entry.within(frame) and mark < sealed for frame, sealed in seals.items()
    )


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
    fence: Callable[[], None] | None = None
    """Called before an effect is performed (not replayed); raises when the task may no
    longer perform (the worker's lease check: the same fence as the cells' journal)."""

    def recorded(self, key: IdempotencyKey) -> EffectRecord | None:
        """The successful record of ``key``, or None (no record, or a failure)."""
        lease = self.log.lease(key.execution_arn, journal_id(key))
        record = (
            None if lease is None or lease.result is None else EffectRecord.from_json(lease.result)
        )
        if record is not None and record.ok:
            return record
        if self.fence is not None:
            self.fence()
        return None

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
