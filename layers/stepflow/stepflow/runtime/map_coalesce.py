"""Coalescing children's reports so that a map run's head is written at a bounded rate.

A run's head is one DynamoDB item: every batch of ``ChildFinished`` (or EXPRESS
``MapRunBatchDone``) reports applied is one write of it, so children finishing fast
would rewrite it as often as the steppers receive their reports, past what one key
takes (DynamoDB throttles a hot key; the target is 100 writes per second at most).

A group of deliveries that holds nothing but reports (and ``MapRunFill``, the run's
note to itself to start more children) and finds the head written less than
:data:`MIN_WRITE_INTERVAL` ago is not applied: its reports are sent back as ONE
delayed ``MapRunReports`` message (a bundle), applied with whatever arrives with it
when it is delivered, or bundled again. The check runs on the head loaded for the
commit, and the commit is conditional on that head's ``seq``, so two such writes of a
running run's head are always at least ``MIN_WRITE_INTERVAL`` apart (as far as the
steppers' clocks agree): at most ``1 / MIN_WRITE_INTERVAL`` per second, whatever the
number of children and however fast they finish (each may be followed by the clear of
its outbox). Only a start, a cancel, an update or a repair is applied at once: the
user's or the parent's, rare. The price: a window refilled by at most 100 children per
write (``START_PER_COMMIT``), i.e. at most 4,000 children started per second per run.
Reports are idempotent (a child counts once, when it leaves ``running``), so a bundle
sent twice, or a report both bundled and redelivered, is harmless; a fill carries
nothing (any write fills the window).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

from stepflow.runtime.messages import Message

MIN_WRITE_INTERVAL = 0.025
"""Seconds between two report writes of one run's head: at most 40 per second, 80 with
the outbox clear that follows a write that starts children."""

BUNDLE_DELAY = 1
"""Seconds a bundle of deferred reports waits (the queue's delay granularity)."""

BUNDLE_BYTES = 128 * 1024
"""The largest bundle (its JSON body) sent: half of SQS's 256 KiB message, the rest
for the envelope and non-ASCII text escaped twice."""

DEFERRABLE = frozenset({"ChildFinished", "MapRunBatchDone", "MapRunReports", "MapRunFill"})
"""The deliveries that only count children or refill the window (and may be deferred)."""


def unbundled(bodies: Sequence[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """``bodies`` with each ``MapRunReports`` bundle replaced by the reports it carries."""
    flat: list[tuple[str, dict[str, Any]]] = []
    for message_id, body in bodies:
        if body.get("type") == "MapRunReports":
            flat.extend((f"{message_id}#{i}", dict(r)) for i, r in enumerate(body["reports"]))
        else:
            flat.append((message_id, body))
    return flat


def reports_only(bodies: Sequence[tuple[str, dict[str, Any]]]) -> bool:
    """Whether every delivery of a group is a child's report (or a fill)."""
    return bool(bodies) and all(body.get("type") in DEFERRABLE for _, body in bodies)


def too_soon(state: dict[str, Any], now: float, interval: float = MIN_WRITE_INTERVAL) -> bool:
    """Whether a running run's head (as stored) was written less than ``interval`` ago.

    A clock that has not moved at all since that write (a virtual clock in a test
    driver, frozen while deliveries are handled) never defers: deferring cannot make
    time pass there. A clock far behind the writer's does not block either.
    """
    if state.get("status") != "RUNNING":
        return False
    written = float(state.get("written_at") or 0.0)
    return written != now and abs(now - written) < interval


def bundle(key: str, bodies: Sequence[tuple[str, dict[str, Any]]]) -> Message | None:
    """One message carrying the reports of ``bodies`` (bundles flattened) to the run ``key``.

    A report's ``output`` is left out: the run reads a child's result from the child's
    record, never from its report. None if the bundle would still be over
    :data:`BUNDLE_BYTES` (long causes): the reports are then applied at once, as a
    message SQS refuses would come back until the dead-letter queue.
    """
    reports = [{k: v for k, v in body.items() if k != "output"} for _, body in unbundled(bodies)]
    message_id = f"{key}#reports/{secrets.token_hex(8)}"
    body = {"type": "MapRunReports", "reports": reports}
    if len(json.dumps(body, separators=(",", ":"))) > BUNDLE_BYTES:
        return None
    return Message(key, message_id, "event", body)
