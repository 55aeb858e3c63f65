"""Following an execution's history as it grows: every event once, in order.

The feed is the log's history itself (``ExecutionLog.history`` locally,
``GetExecutionHistory`` against a deployed API), read with strongly consistent
pages: event ids are dense (1..n) and a commit's events appear together, so
reading on from where the last read stopped can neither skip nor repeat an
event. The change stream would need a reorder buffer and a backfill to give
the same promise; the history gives it by construction.

The paging token of a log is opaque and differs between logs (an index in
memory, ``<item>:<offset>`` on DynamoDB, a wrapped one through the API), and
the last page returns none. So :class:`Tail` keeps the token that *started* the
last, incomplete page and reads it again on the next poll, dropping the ids it
has already passed on: at most one page (``page_size`` events) is read twice.
:func:`history_reader` starts the first page at event ``after`` itself (the log's
``history_from``; its type tells whether the feed already ended), so resuming
late in a long history reads no page before it.

An ending event (:data:`ENDINGS`) ends the feed only when no event follows it
and the execution's head is terminal: a redriven execution goes on after its
``ExecutionFailed`` (``ExecutionRedriven``, then its new events).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from stepflow.runtime.ports import HistoryPage

__all__ = [
    "ENDINGS",
    "RUNNING",
    "HistoryGapError",
    "HistoryLog",
    "PageReader",
    "Tail",
    "event_id",
    "history_reader",
    "terminal",
]

ENDINGS = frozenset(
    {"ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"}
)
"""Event types that end an execution (a stream closes after one)."""

PageReader = Callable[[str | None, int], tuple[list[dict[str, Any]], str | None]]
"""``(token, limit) -> (events, next token or None at the end)``."""


class HistoryLog(Protocol):
    """The log methods a live feed reads (the memory and DynamoDB logs have them)."""

    def history(
        self, execution_arn: str, *, next_token: str | None = None, limit: int = 1000
    ) -> HistoryPage:
        """A page of events from ``next_token`` (None: the first)."""
        ...

    def history_from(self, execution_arn: str, first: int, *, limit: int = 1000) -> HistoryPage:
        """The page of events from event id ``first`` on, reading none before it."""
        ...

    def get(self, execution_arn: str) -> Any:
        """The execution's head (its ``status``), or None."""
        ...


RUNNING = ("RUNNING", "PENDING_REDRIVE")
"""Statuses of an execution that may still add events."""


def terminal(log: HistoryLog, execution_arn: str) -> bool:
    """Whether the execution is not running (unknown counts as ended): the head's status."""
    record = log.get(execution_arn)
    return record is None or str(record.status) not in RUNNING


def history_reader(log: HistoryLog, execution_arn: str, after: int) -> PageReader:
    """A :class:`Tail` reader over ``log``: its first page starts at event ``after``."""

    def read(token: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        if token is None:
            page = log.history_from(execution_arn, max(after, 1), limit=limit)
        else:
            page = log.history(execution_arn, next_token=token, limit=limit)
        return list(page.events), page.next_token

    return read


class HistoryGapError(RuntimeError):
    """The history skipped an id: the feed is not the log it claims to be."""


def event_id(event: dict[str, Any]) -> int:
    """The event's ``id`` (a positive integer), else ValueError."""
    found = event.get("id")
    if not isinstance(found, int) or isinstance(found, bool) or found < 1:
        raise ValueError(f"a history event needs a positive integer 'id', got {found!r}")
    return found


class Tail:
    """Yields an execution's events after ``after`` in id order, each once.

    ``read`` pages the history; ``interval`` is the pause between polls once the
    history is exhausted. :meth:`events` ends after an ending event that is the
    history's last while ``terminal()`` (the head's status is not RUNNING; None:
    the last event decides alone) holds, when ``stop`` is set, or when ``deadline``
    (a :func:`time.monotonic` value) has passed; :attr:`last` is the last id given.
    """

    def __init__(
        self,
        read: PageReader,
        *,
        after: int = 0,
        page_size: int = 100,
        interval: float = 0.1,
        terminal: Callable[[], bool] | None = None,
    ) -> None:
        if after < 0:
            raise ValueError(f"after must be at least 0, not {after}")
        if not 1 <= page_size <= 1000:
            raise ValueError(f"page_size must be 1..1000, not {page_size}")
        self.read = read
        self.last = after
        self.page_size = page_size
        self.interval = interval
        self.terminal = terminal
        self.ended = False
        self.caught_up = False
        """Whether the last :meth:`poll` reached the history's end."""
        self._token: str | None = None
        self._latest = ""
        self.reads = 0

    def events(
        self, *, stop: threading.Event | None = None, deadline: float | None = None
    ) -> Iterator[dict[str, Any]]:
        """The events as they commit (see the class doc for when it ends)."""
        stop = stop or threading.Event()
        while not self.ended:
            if deadline is not None and time.monotonic() >= deadline:
                return
            fresh = self.poll()
            yield from fresh
            if self.ended or fresh:
                continue
            wait = self.interval
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return
            if stop.wait(wait):
                return

    def poll(self, pages: int | None = None) -> list[dict[str, Any]]:
        """Every event committed after :attr:`last` so far (maybe none), in order.

        ``pages``: read at most that many pages (:attr:`caught_up` tells whether
        the history's end was reached).
        """
        out: list[dict[str, Any]] = []
        self.caught_up = False
        while not self.ended and (pages is None or pages > 0):
            pages = None if pages is None else pages - 1
            events, following = self.read(self._token, self.page_size)
            self.reads += 1
            for event in events:
                number = event_id(event)
                self._latest = str(event.get("type", ""))
                if number <= self.last:
                    continue  # read again from the last page's start, or before ``after``
                if number != self.last + 1:
                    raise HistoryGapError(f"event {self.last + 1} is missing (got {number})")
                out.append(event)
                self.last = number
            if following is None:
                self.caught_up = True
                # The history's last event ends it, unless the execution runs again (redrive).
                self.ended = self._latest in ENDINGS and (self.terminal is None or self.terminal())
                break
            self._token = following
        return out
