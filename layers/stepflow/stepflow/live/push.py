"""Pushing an execution's history to its WebSocket subscribers, within a time budget.

Each subscriber gets the history after its ``after``, read from there by
:class:`~stepflow.live.tail.Tail` (:func:`~stepflow.live.tail.history_reader`:
no page before ``after`` is read), one message per event, in order. ``after``
is saved every :attr:`Pusher.save_every` posts and when the push stops, with a
conditional update (another push's progress stands); a push stops at its
``deadline`` and the next push of the execution resumes from the saved id. A
subscription ends after the ending event (unless the execution was redriven:
see :mod:`stepflow.live.tail`); a connection gone (410) is deleted. Delivery is
at least once: clients drop ids at or below the last they saw.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from stepflow.live.tail import HistoryLog, Tail, history_reader, terminal

LOG = logging.getLogger(__name__)

__all__ = ["MAX_MESSAGE_BYTES", "GoneError", "Pusher", "api_poster", "encode"]

MAX_MESSAGE_BYTES = 120 * 1024
"""API Gateway's WebSocket message limit is 128 KB: a larger event is sent without its
details (``truncated``: read it with GetExecutionHistory)."""
SAVE_EVERY = 50


class GoneError(Exception):
    """The connection is closed (API Gateway answered 410 Gone)."""


@dataclass
class Pusher:
    """Pushes history to subscribers; the subclass keeps the subscription items."""

    table: str
    dynamodb: Any
    log: HistoryLog
    post: Callable[[str, bytes], None]
    """``post(connection id, data)``; raises :class:`GoneError` for a closed connection."""
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    """The clock deadlines are on."""
    save_every: int = SAVE_EVERY
    pushed: int = 0
    """Messages posted."""
    failed: int = 0
    """Subscriber pushes that failed (other than Gone): the next push retries them."""

    def push(
        self,
        execution_arn: str,
        subscribers: Sequence[tuple[str, int]],
        deadline: float | None = None,
    ) -> bool:
        """Push each subscriber the history after its ``after``; never raises.

        False when the ``deadline`` (on :attr:`monotonic`) cut it short or a
        subscriber failed (both resume on the next push).
        """
        complete = True
        for connection, after in subscribers:
            try:
                complete = self._push_one(execution_arn, connection, after, deadline) and complete
            except GoneError:
                self.remove(execution_arn, connection)
            except Exception as exc:  # throttled, an outage: the next push (or client) resumes
                LOG.warning("live push of %s to %s failed: %r", execution_arn, connection, exc)
                self.failed += 1
                complete = False
        return complete

    def _push_one(self, arn: str, connection: str, after: int, deadline: float | None) -> bool:
        tail = Tail(
            history_reader(self.log, arn, after),
            after=after,
            terminal=lambda: terminal(self.log, arn),
        )
        saved = sent = after
        try:
            while not tail.ended:
                if deadline is not None and self.monotonic() >= deadline:
                    return False
                events = tail.poll(pages=1)
                for event in events:
                    self.post(connection, encode(event))
                    self.pushed += 1
                    sent = int(event["id"])
                    if sent - saved >= self.save_every:
                        saved = self._save(arn, connection, saved, sent)
                    if deadline is not None and self.monotonic() >= deadline:
                        return False
                if tail.caught_up:
                    break
        finally:
            if not tail.ended and sent > saved:
                self._save(arn, connection, saved, sent)
        if tail.ended:
            self.end(arn, connection)
        return True

    def _save(self, arn: str, connection: str, old: int, new: int) -> int:
        self.advance(arn, connection, old, new)
        return new

    def advance(self, arn: str, connection: str, old: int, new: int) -> bool:
        """Move the subscription's ``after`` from ``old`` to ``new``."""
        raise NotImplementedError

    def end(self, arn: str, connection: str) -> None:
        """End the subscription (the ending event was pushed)."""
        raise NotImplementedError

    def remove(self, arn: str, connection: str) -> None:
        """Delete the subscription and the connection (gone)."""
        raise NotImplementedError


def encode(event: dict[str, Any]) -> bytes:
    """One message: the event as JSON; one over the limit loses its details (``truncated``)."""
    data = json.dumps(event, separators=(",", ":"), default=str).encode()
    if len(data) <= MAX_MESSAGE_BYTES:
        return data
    kept = {k: event[k] for k in ("id", "type", "previousEventId", "timestamp") if k in event}
    return json.dumps({**kept, "truncated": True}, separators=(",", ":"), default=str).encode()


def api_poster(management: Any) -> Callable[[str, bytes], None]:
    """``post`` over an ``apigatewaymanagementapi`` client (410 Gone: :class:`GoneError`)."""

    def post(connection: str, data: bytes) -> None:
        try:
            management.post_to_connection(ConnectionId=connection, Data=data)
        except management.exceptions.GoneException:
            raise GoneError(connection) from None

    return post
