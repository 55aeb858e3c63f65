"""The effect journal: each effect request and its result, recorded in the coordination log.

One record per effect, keyed (execution, attempt, scope, effect index), as
DBOS keys its step log by (workflow, function id). It is a lease record of the
coordination log (:mod:`stepflow.runtime.leases`), written once, conditionally
on its absence, so the memory log and the DynamoDB table both hold it with no
new storage code, and a finished execution's TTL removes it with the rest.

A cell run again after a crash reads each effect's record before calling the
handler: a recorded result (or failure) is returned as it was, and only an
effect with no record is performed. A record whose effect type or request
digest differs from the request at that index means the cell is not
deterministic (:class:`NonDeterministicError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from stepflow.cells.effects import IdempotencyKey
from stepflow.runtime.leases import LeaseConflictError, LeaseLog, TaskLease

RECORD_PREFIX = "fx#"
"""Journal records are lease records whose task id starts with this."""


@dataclass(frozen=True, slots=True)
class EffectRecord:
    """What the journal holds for one effect request.

    ``effect`` is the effect's name and ``digest`` its request's fingerprint;
    ``ok`` with ``result`` (JSON data), or not ``ok`` with ``error`` and ``cause``
    (the handler failed for good, after its retries). ``performed`` says whether a
    failed effect may have happened anyway: ``"no"`` (refused before it was sent),
    ``"unknown"`` (sent, no answer) or ``"yes"`` (performed, its result unusable).
    A record without it (written before it existed) reads as ``"no"``.
    """

    effect: str
    digest: str
    ok: bool
    result: Any = None
    error: str | None = None
    cause: str | None = None
    performed: str = "no"

    @property
    def may_have_happened(self) -> bool:
        """A failure whose effect may have been performed (``performed`` yes or unknown)."""
        return not self.ok and self.performed in PERFORMED_MAYBE

    def to_json(self) -> dict[str, Any]:
        """The record as stored."""
        data: dict[str, Any] = {"effect": self.effect, "digest": self.digest, "ok": self.ok}
        if self.ok:
            data["result"] = self.result
        else:
            data["error"], data["cause"] = self.error, self.cause
            if self.performed != "no":  # records of a refusal stay as they were
                data["performed"] = self.performed
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EffectRecord:
        """A stored record read back."""
        return cls(
            str(data.get("effect", "")),
            str(data.get("digest", "")),
            bool(data.get("ok")),
            data.get("result"),
            data.get("error"),
            data.get("cause"),
            _performed(data.get("performed")),
        )


PERFORMED = ("no", "unknown", "yes")
"""Whether a failed effect happened, from least to most certain that it did."""
PERFORMED_MAYBE = frozenset({"unknown", "yes"})


def _performed(value: Any) -> str:
    """A stored ``performed`` read back (a missing or unknown value: ``"no"``)."""
    return value if isinstance(value, str) and value in PERFORMED else "no"


def most_performed(first: str, second: str) -> str:
    """The more certain of two ``performed`` values that the effect happened."""
    return max(first, second, key=PERFORMED.index)


class EffectJournal(Protocol):
    """Where a cell's effect records live."""

    def recorded(self, key: IdempotencyKey) -> EffectRecord | None:
        """The record of ``key`` (strongly consistent), or None."""

    def record(self, key: IdempotencyKey, record: EffectRecord) -> EffectRecord:
        """Store ``record`` unless ``key`` has one; return the record that is stored.

        When another run recorded ``key`` first, its record wins and is returned.
        """


def journal_id(key: IdempotencyKey) -> str:
    """The lease-record id of ``key`` (the execution is the record's partition)."""
    return f"{RECORD_PREFIX}{key.attempt}#{key.scope}#{key.index}"


@dataclass(frozen=True, slots=True)
class LogJournal:
    """The journal on a coordination log's lease records (memory or DynamoDB)."""

    log: LeaseLog

    def recorded(self, key: IdempotencyKey) -> EffectRecord | None:
        """The record of ``key``, or None."""
        lease = self.log.lease(key.execution_arn, journal_id(key))
        if lease is None or lease.result is None:
            return None
        return EffectRecord.from_json(lease.result)

    def record(self, key: IdempotencyKey, record: EffectRecord) -> EffectRecord:
        """Write ``record`` as version 1 of its lease record; the stored one if it exists."""
        lease = TaskLease(key.execution_arn, journal_id(key), version=1, result=record.to_json())
        try:
            self.log.put_lease(lease)
        except LeaseConflictError:
            stored = self.recorded(key)
            if stored is None:  # a record with no result: never written by a journal
                raise
            return stored
        return record
