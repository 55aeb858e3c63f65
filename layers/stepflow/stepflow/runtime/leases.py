"""Task leases: one typed lease record, and the rules for claiming it.

Work that runs outside the commit that scheduled it is leased through one
:class:`TaskLease` record in the coordination log: an activity task handed to
workers (each hand-out is a new ``delivery``), a queued inline task (keyed by
its task id; its result is recorded in the lease), and the inline tasks one
commit hands to the stepper that made it (one record for them all, keyed
``outbox#<seq>``, so a Map's ten tasks cost one conditional write). A log
stores the record and writes it only conditionally (:class:`LeaseLog`:
compare-and-set on ``version``); the rules (who may take a lease, when it is
exhausted, what a heartbeat or a release writes) are the pure functions of
this module, written once for every log.

A report of a worker is committed together with a :class:`LeaseFence`: the
commit lands only while the lease record is still the one the report was
checked against, so a worker whose delivery was superseded between its check
and its commit writes nothing (DESIGN.md invariant 4).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol


@dataclass(frozen=True, slots=True)
class TaskLease:
    """The lease of one task attempt.

    ``version`` counts the record's writes; every write is conditional on the
    previous one. ``owner`` holds it until ``until`` (epoch seconds) unless
    ``released``. For activity tasks, ``delivery`` numbers the hand-outs
    (tokens are bound to it), ``expired`` counts hand-outs whose lease ran out
    without a result, and ``queue``/``receipt``/``lease_seconds`` locate the
    queue message behind the current delivery. ``result`` is the recorded
    result event of an inline task attempt that ran to completion.
    """

    execution_arn: str
    task_id: str
    version: int = 0
    delivery: int = 0
    owner: str | None = None
    until: float = 0.0
    released: bool = False
    expired: int = 0
    queue: str | None = None
    receipt: str | None = None
    lease_seconds: float = 0.0
    result: dict[str, Any] | None = None

    def live(self, now: float) -> bool:
        """True while someone holds this lease: not released, no result, not run out."""
        return self.result is None and not self.released and self.until > now

    def next(self, **changes: Any) -> TaskLease:
        """The record's next version with ``changes`` applied."""
        return replace(self, version=self.version + 1, **changes)


@dataclass(frozen=True, slots=True)
class LeaseFence:
    """A commit's condition on a lease record, and optionally its new value.

    The commit lands only if the stored record is still at ``current.version``
    (absent when that is 0); ``new`` (its next version), if given, is written
    by the same atomic write.
    """

    current: TaskLease
    new: TaskLease | None = None


@dataclass(frozen=True, slots=True)
class TaskClaim:
    """The outcome of claiming an inline task attempt.

    ``acquired``: run it now (``lease`` is ours). ``busy``: another worker
    holds a live ``lease`` (try again after ``lease.until``). ``done``: it
    already ran; ``result`` is the recorded result event, to be re-sent
    instead of running the task again.
    """

    status: Literal["acquired", "busy", "done"]
    result: dict[str, Any] | None = None
    lease: TaskLease | None = None


class LeaseConflictError(Exception):
    """A lease write lost the race: the record moved on since it was read."""

    def __init__(self, lease: TaskLease) -> None:
        super().__init__(
            f"{lease.execution_arn} task {lease.task_id}: the lease is no longer at "
            f"version {lease.version - 1}"
        )
        self.lease = lease


class LeaseHeldError(Exception):
    """A live lease of another delivery exists: hand out nothing."""

    def __init__(self, lease: TaskLease) -> None:
        super().__init__(f"{lease.execution_arn} task {lease.task_id} is leased till {lease.until}")
        self.lease = lease


class LeaseExhaustedError(Exception):
    """The attempt's lease ran out ``max_deliveries`` times: fail it."""

    def __init__(self, expired: int) -> None:
        super().__init__(f"lease expired {expired} times")
        self.expired = expired


class LeaseLog(Protocol):
    """Where lease records live: read one, or write its next version conditionally."""

    def lease(self, execution_arn: str, task_id: str) -> TaskLease | None:
        """The attempt's lease record (strongly consistent), or None."""

    def put_lease(self, lease: TaskLease) -> None:
        """Store ``lease`` iff the stored record is at ``lease.version - 1`` (0: absent).

        Otherwise raise :class:`LeaseConflictError` and write nothing.
        """


def current(log: LeaseLog, execution_arn: str, task_id: str) -> TaskLease:
    """The stored lease, or the empty record (version 0) a first claim is conditioned on."""
    return log.lease(execution_arn, task_id) or TaskLease(execution_arn, task_id)


def claim(
    log: LeaseLog, execution_arn: str, task_id: str, owner: str, now: float, seconds: float
) -> TaskClaim:
    """Lease an inline task attempt to ``owner`` unless a live lease or a result exists.

    The first try assumes there is no record yet (the common case: a task its
    scheduler runs), so it costs one conditional write and no read.
    """
    return _take(log, TaskLease(execution_arn, task_id), owner, now, seconds, results_end=True)


def claim_group(
    log: LeaseLog, execution_arn: str, key: str, owner: str, now: float, seconds: float
) -> TaskClaim:
    """Lease a group of one commit's tasks to ``owner`` unless another holds it live.

    Unlike :func:`claim`, a recorded result does not end the record: it lists the
    members done (``{"done": {task id: result event or None}}``, written by the
    runner's fallback), and the record can be taken again once it is released or has
    run out, with that list kept, so that only members neither done nor closed in
    the head run again. ``status`` is ``acquired`` (``result`` is the list recorded
    so far) or ``busy``. The first try assumes no record (one conditional write).
    """
    return _take(log, TaskLease(execution_arn, key), owner, now, seconds, results_end=False)


def _take(
    log: LeaseLog, held: TaskLease, owner: str, now: float, seconds: float, *, results_end: bool
) -> TaskClaim:
    """The claim loop of :func:`claim` and :func:`claim_group`, from a guess of the record.

    ``results_end``: a recorded result ends the record (``done``); else it is handed
    to the new holder with the claim (a group's list of members done).
    """
    while True:
        if results_end and held.result is not None:
            return TaskClaim("done", held.result, held)
        if not held.released and held.until > now:
            return TaskClaim("busy", None, held)
        mine = held.next(owner=owner, until=now + seconds, released=False)
        try:
            log.put_lease(mine)
        except LeaseConflictError:
            held = current(log, held.execution_arn, held.task_id)  # someone wrote first
            continue
        return TaskClaim("acquired", None if results_end else held.result, mine)


def finish(log: LeaseLog, held: TaskLease, result: dict[str, Any]) -> None:
    """Record an attempt's result, only if ``held`` is still the stored lease."""
    # If the lease moved on, its new holder records its own result.
    with contextlib.suppress(LeaseConflictError):
        log.put_lease(held.next(result=result))


def queue_lease_until(now: float, seconds: float) -> float:
    """When the lease of a queue message received a moment before ``now`` runs out.

    The queue started the message's visibility timeout when it handed the
    message out, a little before ``now`` (the hand-out reads the log first).
    The record ends up to a second earlier, so that the queue's next delivery
    after the timeout finds it expired instead of live for a few milliseconds
    more (which would hand out nothing and hide the task for another timeout).
    A duplicate delivery, which comes at once, still finds it live.
    """
    return now + seconds - min(1.0, seconds / 10)


def hand_out(
    previous: TaskLease,
    *,
    now: float,
    worker: str | None,
    queue: str,
    receipt: str,
    lease_seconds: float,
    max_deliveries: int,
) -> TaskLease:
    """The lease of the next delivery of an activity attempt.

    Raises :class:`LeaseHeldError` while the current delivery's lease is live
    (a duplicate or early redelivery of the queue message), and
    :class:`LeaseExhaustedError` once the lease has run out ``max_deliveries``
    times. A released delivery does not count as expired.
    """
    if previous.live(now):
        raise LeaseHeldError(previous)
    expired = previous.expired
    if previous.delivery and not previous.released:
        expired += 1  # the last hand-out's lease ran out
    if expired >= max_deliveries:
        raise LeaseExhaustedError(expired)
    return previous.next(
        delivery=previous.delivery + 1,
        owner=worker,
        until=queue_lease_until(now, lease_seconds),
        released=False,
        expired=expired,
        queue=queue,
        receipt=receipt,
        lease_seconds=lease_seconds,
    )


def heartbeat(lease: TaskLease, now: float) -> TaskLease:
    """The lease extended by its length from ``now`` (as the queue message's visibility)."""
    return lease.next(until=max(lease.until, queue_lease_until(now, lease.lease_seconds)))


def release(lease: TaskLease, now: float) -> TaskLease:
    """The lease given back: the next hand-out may take it at once, without counting it expired."""
    return lease.next(released=True, until=now)


def check_fence(stored: TaskLease | None, fence: LeaseFence) -> bool:
    """True if ``stored`` is the record ``fence`` expects (for logs that check in memory)."""
    version = stored.version if stored is not None else 0
    return version == fence.current.version
