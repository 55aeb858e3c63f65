"""How the test environment delivers messages, and the log wrapper that reports events.

The environment plays the queue: it hands batches to a stepper (directly, or as
SQS events to the stepper Lambda handler), redelivers failed messages after a
visibility delay on the virtual clock, and gives up after a few receives as a
dead-letter queue would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from stepflow.engine.history_events import HistoryEvent, expand, takes_compact_events
from stepflow.runtime import CoordinationLog, ExecutionRecord, Message, Stepper
from stepflow.runtime.leases import LeaseFence

Deliver = Callable[[Stepper, list[Message]], list[tuple[Message, Exception | None]]]
"""Hands a batch to a stepper; returns the messages that failed (to be redelivered)."""

REDELIVERY_SECONDS = 60
"""Virtual seconds before a failed message is delivered again (a queue's visibility)."""

MAX_RECEIVES = 5
"""Deliveries of one message before the environment gives up (a queue's dead-letter)."""


class DeliveryError(RuntimeError):
    """A message failed :data:`MAX_RECEIVES` times: in production it would be dead-lettered."""


def handle_batch(stepper: Stepper, batch: list[Message]) -> list[tuple[Message, Exception | None]]:
    """The default :data:`Deliver`: the stepper's own ``handle_batch``."""
    return [(message, exc) for message, exc in stepper.handle_batch(batch)]


class ReportingLog:
    """Wraps a coordination log: reports each top-level event committed to ``on_event``."""

    compact_events: bool
    """Whether the inner log takes compact events (then this passes them on)."""

    def __init__(
        self, inner: CoordinationLog, on_event: Callable[[dict[str, Any]], None] | None
    ) -> None:
        self.inner, self.on_event = inner, on_event
        self.compact_events = takes_compact_events(inner)

    def create(self, record: ExecutionRecord, events: Sequence[HistoryEvent]) -> None:
        """Create, then report (see :meth:`CoordinationLog.create`)."""
        self.inner.create(record, events)
        self._seen(record.execution_arn, events)

    def commit(
        self,
        record: ExecutionRecord,
        expected_seq: int,
        events: Sequence[HistoryEvent],
        *,
        fence: LeaseFence | None = None,
    ) -> None:
        """Commit, then report (see :meth:`CoordinationLog.commit`)."""
        self.inner.commit(record, expected_seq, events, fence=fence)
        self._seen(record.execution_arn, events)

    def _seen(self, execution_arn: str, events: Sequence[HistoryEvent]) -> None:
        if self.on_event is not None and "#" not in execution_arn:
            for event in events:
                self.on_event(expand(event))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
