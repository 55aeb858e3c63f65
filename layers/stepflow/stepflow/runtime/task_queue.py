"""The task-queue port: named queues that lease deferred tasks to workers.

A worker's lease on a task *is* the message's visibility: a received message
stays invisible for ``lease_seconds``, :meth:`TaskQueue.extend` pushes that
back (a heartbeat) or, with 0, releases it at once, and :meth:`TaskQueue.ack`
removes it. A lease that runs out makes the message visible again, so a task
whose worker died is received by another one. Each queue carries string tags
(an activity's name and creation date). The AWS implementation is
:class:`stepflow.aws.sqs_task_queue.SQSTaskQueue`; :class:`InMemoryTaskQueue`
is its twin on a (possibly virtual) clock.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from stepflow.runtime.messages import Message


@dataclass(frozen=True, slots=True)
class Lease:
    """A received task message: ``receipt`` names this delivery of it.

    ``receive_count`` counts the deliveries of the message so far (1 the first time).
    """

    queue: str
    receipt: str
    body: dict[str, Any]
    receive_count: int


class QueueDoesNotExistError(Exception):
    """No task queue has that name."""


class TaskQueue(Protocol):
    """Named queues of task messages, leased through their visibility."""

    def create(self, name: str, tags: Mapping[str, str]) -> None:
        """Create the queue (and its dead-letter queue); a no-op if it exists."""

    def delete(self, name: str) -> None:
        """Delete the queue and the messages in it (a no-op if there is none)."""

    def tags(self, name: str) -> dict[str, str] | None:
        """The queue's tags, or None if there is no such queue."""

    def names(self) -> list[str]:
        """The names of all task queues, sorted."""

    def send(self, name: str, body: dict[str, Any], delay_seconds: int = 0) -> None:
        """Enqueue a task message; :class:`QueueDoesNotExistError` if there is no queue."""

    def receive(self, name: str, *, lease_seconds: int, wait_seconds: float = 0) -> Lease | None:
        """Lease the next visible message for ``lease_seconds``, waiting up to ``wait_seconds``."""

    def extend(self, name: str, receipt: str, lease_seconds: int) -> None:
        """Hide delivery ``receipt`` for ``lease_seconds`` from now (0 releases it)."""

    def ack(self, name: str, receipt: str) -> None:
        """Remove the message of delivery ``receipt`` (a stale receipt does nothing)."""


class TaskRouter(Protocol):
    """Decides which task messages are deferred (to a task queue) and sends them there."""

    def deferred(self, message: Message) -> bool:
        """True if the task of ``message`` runs on a worker, not inline in the stepper."""

    def dispatch(self, message: Message) -> None:
        """Put the deferred task of ``message`` on its queue."""


@dataclass(slots=True)
class _Entry:
    body: dict[str, Any]
    visible_at: float
    receipt: str = ""
    count: int = 0


@dataclass(slots=True)
class _Queue:
    tags: dict[str, str]
    entries: list[_Entry] = field(default_factory=list)


class InMemoryTaskQueue:
    """A :class:`TaskQueue` in memory, thread-safe, on ``clock``.

    With a virtual clock, pass ``wait_seconds=0`` (the default) to receive:
    a long poll waits in real time.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._queues: dict[str, _Queue] = {}
        self._changed = threading.Condition()
        self._receipts = itertools.count(1)

    def create(self, name: str, tags: Mapping[str, str]) -> None:
        """Create the queue unless it exists."""
        with self._changed:
            self._queues.setdefault(name, _Queue(dict(tags)))

    def delete(self, name: str) -> None:
        """Drop the queue and its messages."""
        with self._changed:
            self._queues.pop(name, None)

    def tags(self, name: str) -> dict[str, str] | None:
        """The queue's tags, or None."""
        with self._changed:
            queue = self._queues.get(name)
            return None if queue is None else dict(queue.tags)

    def names(self) -> list[str]:
        """All queue names, sorted."""
        with self._changed:
            return sorted(self._queues)

    def send(self, name: str, body: dict[str, Any], delay_seconds: int = 0) -> None:
        """Enqueue ``body``, visible after ``delay_seconds``."""
        with self._changed:
            self._queue(name).entries.append(_Entry(dict(body), self.clock() + delay_seconds))
            self._changed.notify_all()

    def receive(self, name: str, *, lease_seconds: int, wait_seconds: float = 0) -> Lease | None:
        """Lease the oldest visible message, polling until ``wait_seconds`` (real time) pass."""
        deadline = time.monotonic() + wait_seconds
        with self._changed:
            while True:
                now = self.clock()
                for entry in self._queue(name).entries:
                    if entry.visible_at <= now:
                        entry.visible_at = now + lease_seconds
                        entry.receipt = f"r{next(self._receipts)}"
                        entry.count += 1
                        return Lease(name, entry.receipt, dict(entry.body), entry.count)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                # Leases run out without a notification: look again every so often.
                self._changed.wait(min(left, 0.05))

    def extend(self, name: str, receipt: str, lease_seconds: int) -> None:
        """Move the delivery's visibility to ``lease_seconds`` from now."""
        with self._changed:
            for entry in self._queue(name).entries:
                if entry.receipt == receipt:
                    entry.visible_at = self.clock() + lease_seconds
                    self._changed.notify_all()

    def ack(self, name: str, receipt: str) -> None:
        """Remove the delivery's message."""
        with self._changed:
            queue = self._queue(name)
            queue.entries = [entry for entry in queue.entries if entry.receipt != receipt]

    def pending(self, name: str) -> int:
        """Messages in the queue, visible or leased (for tests and benchmarks)."""
        with self._changed:
            return len(self._queue(name).entries)

    def _queue(self, name: str) -> _Queue:
        queue = self._queues.get(name)
        if queue is None:
            raise QueueDoesNotExistError(f"no task queue named {name!r}")
        return queue
