"""The "held until" mark: a held outbox is not re-sent while its tasks run in place.

The mark: a runner's commit whose tasks it may hold writes ``held_until`` (the
invocation's deadline, its clock, whole seconds:
:meth:`~stepflow.runtime.in_place.InPlace.deadline`; named by the commit's seq,
:data:`HELD_UNTIL`; on DynamoDB the head's commit time) in that same write. While it
lies more than :data:`CLOCK_SKEW` ahead, no delivery re-sends the outbox (:func:`held`:
a repair message, a timer, a callback, another runner's commit, a retried
StartExecution), and the repair job skips the head until the mark is its age old. A
commit on a held head keeps, in its new outbox and under the same mark (or its own, if
earlier: a mark is never pushed later over what it carries), the groups with a member
still open and every other message of the old one (:func:`carry_held`; sent once by
their writers, or only the re-send after the mark recovers them), and sends only its own
messages (``OutboxSender.flush`` ``skip``). Once they all went, it replaces the outbox
with what it carries (``CoordinationLog.keep_outbox``, one write, as the clear of a
commit without a mark), so the next commit does not carry them again: the outbox stays
bounded. A mark left on an outbox the runner then did not hold (sent and cleared) is
harmless; the next commit drops a mark it carries nothing under. The outbox is never
cleared out of time while it carries what the runner did not send.

The price: what a writer that dies between its commit and its send leaves pending on a
held head, and the tasks of a holder that dies, are recovered only once the mark has
passed (at most the invocation's time left when it was written, 15 minutes; by the
repair job, its age later); what is pending then is re-sent once (the tasks meet their
lease records, closed or live: a few requests, not a second run). A send that fails with
an error ends the mark instead (:func:`unmarked`): the redelivery re-sends at once. A
runner without a deadline (a context with no clock: tests) writes no mark: each other
delivery re-sends its held outbox once (its claim meets the live lease). ``stepflow
local``'s runner has one (:mod:`stepflow.local.invocation`).
"""

from __future__ import annotations

import math
from collections.abc import Container
from dataclasses import replace

from stepflow.runtime.in_place import commit_prefix, current
from stepflow.runtime.messages import Message
from stepflow.runtime.ports import ExecutionRecord
from stepflow.runtime.task_groups import groupable

HELD_UNTIL = "held_until"
"""Record attribute: ``[seq, until]``, the epoch second (the holder's clock, whole) until
which the outbox of the commit at ``seq`` is held in place; while it lies ahead, no other
delivery re-sends that outbox. It names its commit's seq: a mark is its commit's only.

The DynamoDB log stores no attribute for it: a marked commit writes ``until`` as the
head's ``committed_at`` (the repair job's age test, which then skips the head until
``until`` plus its age), and a head read with ``committed_at`` ahead of the clock reads
back as marked (:mod:`stepflow.aws.log_heads`). A commit by code that does not know the
mark writes its own time there, so it never leaves a stale mark behind, and the mark
adds no byte to a head."""

CLOCK_SKEW = 5.0
"""Seconds two Lambdas' wall clocks may disagree by. A mark counts only while it is more
than that ahead of the reader's clock: a commit time that a writer's clock put slightly
ahead is never a mark, and a mark ends that much early (a re-send its lease refuses)."""

LONGEST_HOLD = 900.0 + CLOCK_SKEW
"""No invocation runs longer (Lambda's 15 minutes): a mark further ahead is not believed."""


def mark_value(seq: int, until: float) -> list[int]:
    """The attribute a commit at ``seq`` writes for a mark ``until`` (whole seconds, up)."""
    return [seq, math.ceil(until)]


def mark_until(value: object, seq: int) -> float | None:
    """The ``until`` of a stored mark if it is well formed and belongs to the commit at ``seq``."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    at, until = value
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in value):
        return None
    if at != seq or not math.isfinite(until):
        return None
    return float(until)


def held_until(record: ExecutionRecord) -> float | None:
    """The head's "held until" mark (epoch seconds): None when absent, malformed or stale."""
    return mark_until(record.attributes.get(HELD_UNTIL), record.seq)


def live(until: float | None, now: float) -> bool:
    """Whether a mark ``until`` still holds at ``now``.

    Only while more than :data:`CLOCK_SKEW` ahead, and not further than
    :data:`LONGEST_HOLD`.
    """
    return until is not None and CLOCK_SKEW < until - now <= LONGEST_HOLD


def held(record: ExecutionRecord, now: float) -> bool:
    """Whether ``record``'s outbox is held in place at ``now``: no delivery re-sends it."""
    return live(held_until(record), now)


def carry_held(record: ExecutionRecord, open_tasks: Container[str]) -> tuple[Message, ...]:
    """What a commit on a held head keeps of its outbox (not sent again before the mark).

    Every group of tasks with a member still open, whole (the lease key of the group its
    holder runs), and every other message but a task that may be held (a timer, an
    event, a poll, a ``.sync`` job's cancel, whatever its task's state: review): one
    whose send is unknown (its writer failed before replacing the outbox with what it
    carried; only the re-send after the mark recovers it), or a holder's own, sent once
    (but those this runner sent). With no open task (a commit that ends the execution)
    only those other messages, which that commit then sends.
    """
    in_place = current()
    live_groups = {
        commit_prefix(m)
        for m in record.outbox
        if groupable(m) and str(m.body.get("task_id")) in open_tasks
    }
    return tuple(
        m
        for m in record.outbox
        if (groupable(m) and commit_prefix(m) in live_groups)
        or (not groupable(m) and (in_place is None or not in_place.was_sent(m)))
    )


def unmarked(record: ExecutionRecord) -> ExecutionRecord:
    """``record`` without its "held until" mark (written at its seq, it ends the mark).

    A commit on a held head whose own send failed ends the mark: its messages (a task
    nobody holds among them) would otherwise wait for it (review); the held groups,
    re-sent then, meet their holder's live lease.
    """
    attributes = {k: v for k, v in record.attributes.items() if k != HELD_UNTIL}
    return replace(record, attributes=attributes)


def mark(
    record: ExecutionRecord, now: float, tasks: list[Message], carried: tuple[Message, ...]
) -> float | None:
    """The "held until" mark of a commit on ``record`` (None: none).

    ``tasks``: the commit's own task messages for the tasks queue; ``carried``: what it
    keeps of a held outbox (:func:`carry_held`). The earlier of the mark it keeps (while it
    carries something under it) and its own (a runner in place that may hold ``tasks``):
    a mark is never pushed later over what it carries, or runners that keep holding new
    tasks would keep a dead holder's tasks from ever being re-sent (review).
    """
    kept = held_until(record) if carried and held(record, now) else None
    in_place = current()
    own = in_place.deadline(tasks, now) if in_place is not None else None
    marks = [m for m in (kept, own) if m is not None]
    return min(marks) if marks else None
