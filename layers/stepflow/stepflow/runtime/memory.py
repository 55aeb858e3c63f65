"""In-memory twins of the runtime's ports, for tests and the in-process runtime."""

from __future__ import annotations

import copy
import heapq
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import orjson

from stepflow.engine.history_events import HistoryEvent
from stepflow.runtime.leases import LeaseConflictError, LeaseFence, TaskLease, check_fence
from stepflow.runtime.memory_chunks import Chunk, UnstorableValueError, check, ends_of, frozen
from stepflow.runtime.memory_chunks import position as _position
from stepflow.runtime.memory_chunks import thawed as _thawed
from stepflow.runtime.messages import Message
from stepflow.runtime.ports import (
    ConflictError,
    ExecutionAlreadyExistsError,
    ExecutionRecord,
    HistoryPage,
    UnstorableDataError,
)
from stepflow.runtime.registry import listing_key
from stepflow.runtime.signing import ForgedMessageError, MessageSigner


class InMemoryLog:
    """A :class:`~stepflow.runtime.ports.CoordinationLog` in a dict, guarded by a lock.

    Records and events are copied in and out, as a real store would (compact
    events, immutable, are kept as they are: see :mod:`.memory_chunks`).
    """

    compact_events = True
    """Its commits take compact events (:mod:`stepflow.engine.history_events`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._heads: dict[str, ExecutionRecord] = {}
        # Each event stored serialized (as a store would): one copy in, one copy out.
        self._events: dict[str, list[Chunk]] = {}
        self._ends: dict[str, list[int]] = {}  # events up to the end of each chunk
        self._leases: dict[tuple[str, str], TaskLease] = {}
        self.writes = 0

    def create(self, record: ExecutionRecord, events: Sequence[HistoryEvent]) -> None:
        """Insert a new execution (conditional on its ARN being free)."""
        with self._lock:
            existing = self._heads.get(record.execution_arn)
            if existing is not None:
                raise ExecutionAlreadyExistsError(_clone(existing))
            head, chunks = _stored(record, events)
            self._heads[record.execution_arn] = head
            self._events[record.execution_arn] = chunks
            self._ends[record.execution_arn] = ends_of([], chunks)
            self.writes += 1

    def get(self, execution_arn: str) -> ExecutionRecord | None:
        """The current head, or None."""
        with self._lock:
            head = self._heads.get(execution_arn)
            return _clone(head) if head is not None else None

    def get_many(self, execution_arns: Sequence[str]) -> list[ExecutionRecord | None]:
        """The current heads of ``execution_arns``, in order (None where absent)."""
        with self._lock:
            heads = [self._heads.get(arn) for arn in execution_arns]
        return [_clone(head) if head is not None else None for head in heads]

    def put_many(self, records: Sequence[ExecutionRecord]) -> None:
        """Store each record, replacing any head of its ARN (no condition, no events)."""
        stored = [_stored(record, [])[0] for record in records]  # all refused, or none
        with self._lock:
            for head in stored:
                self._heads[head.execution_arn] = head
                self._events.setdefault(head.execution_arn, [])
                self._ends.setdefault(head.execution_arn, [])
                self.writes += 1

    def commit(
        self,
        record: ExecutionRecord,
        expected_seq: int,
        events: Sequence[HistoryEvent],
        *,
        fence: LeaseFence | None = None,
    ) -> None:
        """Replace the head and append events iff the head is at ``expected_seq``.

        With a ``fence``, also iff the lease record is at its expected version;
        ``fence.new`` is written with the commit.
        """
        if events and record.seq <= expected_seq:  # as the DynamoDB log (log_pending)
            raise ValueError(
                f"{record.execution_arn}: a commit with events must move the seq past "
                f"{expected_seq}"
            )
        with self._lock:
            head = self._heads.get(record.execution_arn)
            if head is None or head.seq != expected_seq:
                raise ConflictError(record.execution_arn, expected_seq)
            stored, chunks = _stored(record, events)
            if fence is not None:
                key = (fence.current.execution_arn, fence.current.task_id)
                if not check_fence(self._leases.get(key), fence):
                    raise ConflictError(record.execution_arn, expected_seq)
                if fence.new is not None:
                    self._leases[key] = _clone_lease(fence.new)
            self._heads[record.execution_arn] = stored
            self._events[record.execution_arn].extend(chunks)
            ends_of(self._ends[record.execution_arn], chunks)
            self.writes += 1

    def clear_outbox(self, execution_arn: str, seq: int) -> None:
        """Empty the outbox if the head is still at ``seq``."""
        with self._lock:
            head = self._heads.get(execution_arn)
            if head is not None and head.seq == seq and head.outbox:
                self._heads[execution_arn] = replace(head, outbox=())
                self.writes += 1

    def keep_outbox(self, record: ExecutionRecord, messages: Sequence[Message]) -> None:
        """Make the outbox ``messages`` if the head is still at ``record.seq``.

        The head's attributes become ``record``'s too (a mark ended: ``held_mark.unmarked``).
        """
        kept = _clone(replace(record, outbox=tuple(messages)))
        with self._lock:
            head = self._heads.get(record.execution_arn)
            if head is not None and head.seq == record.seq:
                self._heads[record.execution_arn] = replace(
                    head, outbox=kept.outbox, attributes=kept.attributes
                )
                self.writes += 1

    def history(
        self,
        execution_arn: str,
        *,
        next_token: str | None = None,
        limit: int = 1000,
        reverse: bool = False,
    ) -> HistoryPage:
        """A page of events, oldest or (``reverse``) newest first, from ``next_token``.

        A forward token ``<n>`` counts the events before the page, a reverse one
        ``r<n>`` the events still to give (so appends do not move it).
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        with self._lock:
            chunks = self._events.get(execution_arn, [])
            ends = self._ends.get(execution_arn, [])
            total = ends[-1] if ends else 0
            if reverse:
                stop = _position(next_token, "r", total) if next_token else total
                start = max(0, stop - limit)
                page = _thawed(chunks, ends, start, stop)[::-1]
                return HistoryPage(page, f"r{start}" if start > 0 else None)
            start = _position(next_token, "", None) if next_token else 0
            page = _thawed(chunks, ends, start, start + limit)
            more = start + limit < total
            return HistoryPage(page, str(start + limit) if more else None)

    def history_reader(self, execution_arn: str) -> Callable[[], list[dict[str, Any]]]:
        """The execution's events so far, decoded (fresh copies) only when the reader is called.

        A snapshot: later commits are not in it. It holds the stored commits, not the log.
        """
        with self._lock:
            chunks = list(self._events.get(execution_arn, []))
            ends = list(self._ends.get(execution_arn, []))
        total = ends[-1] if ends else 0
        return lambda: _thawed(chunks, ends, 0, total)

    def history_from(self, execution_arn: str, first: int, *, limit: int = 1000) -> HistoryPage:
        """The page of events from event id ``first`` (ids are dense from 1: its index + 1)."""
        return self.history(execution_arn, next_token=str(max(first, 1) - 1), limit=limit)

    def lease(self, execution_arn: str, task_id: str) -> TaskLease | None:
        """The attempt's lease record, or None."""
        with self._lock:
            held = self._leases.get((execution_arn, task_id))
            return _clone_lease(held) if held is not None else None

    def put_lease(self, lease: TaskLease) -> None:
        """Store ``lease`` iff the stored record is at the version before it."""
        with self._lock:
            key = (lease.execution_arn, lease.task_id)
            held = self._leases.get(key)
            if (held.version if held is not None else 0) != lease.version - 1:
                raise LeaseConflictError(lease)
            self._leases[key] = _clone_lease(lease)
            self.writes += 1

    def list_executions(
        self,
        state_machine_arn: str,
        *,
        status: str | None = None,
        next_token: str | None = None,
        limit: int = 100,
    ) -> tuple[list[ExecutionRecord], str | None]:
        """Top-level executions of a state machine, newest first; the token is an offset."""
        try:
            start = int(next_token) if next_token else 0
        except ValueError:
            raise ValueError(f"invalid executions token {next_token!r}") from None
        if start < 0 or limit < 1:
            raise ValueError(f"invalid executions token {next_token!r} or limit {limit}")
        with self._lock:
            found = [
                head
                for arn, head in self._heads.items()
                if listing_key(arn, head.state_machine_arn, head.attributes) == state_machine_arn
                and status in (None, head.status)
            ]
        found.sort(key=lambda head: (-head.start_date, head.execution_arn))
        page = [_clone(head) for head in found[start : start + limit]]
        return page, (str(start + limit) if start + limit < len(found) else None)


class InMemoryBus:
    """A :class:`~stepflow.runtime.ports.MessageBus` on a virtual clock.

    Messages become deliverable at ``now + delay``; :meth:`receive` hands out
    the earliest one (advancing the clock to it when nothing is due). Nothing
    is removed until :meth:`ack`, so a crashed handler's message comes back.

    Like the SQS bus, it carries each message in its signed wire form
    (``signer``, by default a random key of this bus) and verifies it on
    delivery: a forged message put on it with :meth:`send_wire` is dropped and
    counted (``signer.forged``), never delivered.
    """

    def __init__(self, now: float = 0.0, *, signer: MessageSigner | None = None) -> None:
        self.now = now
        self.signer = signer or MessageSigner.random()
        self._queue: list[tuple[float, int, dict[str, Any]]] = []
        self._decoded: dict[int, Message] = {}
        self._order = 0
        self.sent: list[Message] = []

    def send(self, message: Message, delay_seconds: int = 0) -> None:
        """Enqueue ``message`` (signed) after ``delay_seconds``."""
        self.sent.append(message)
        self.send_wire(self.signer.sign(message), delay_seconds)

    def send_wire(self, wire: dict[str, Any], delay_seconds: int = 0) -> None:
        """Enqueue a message in its wire form as is (a forger's, in tests)."""
        self._order += 1
        heapq.heappush(self._queue, (self.now + delay_seconds, self._order, wire))

    def next_due(self) -> float | None:
        """When the earliest queued message becomes deliverable (None when empty)."""
        return self._queue[0][0] if self._queue else None

    def receive(self) -> Message | None:
        """The next message (it stays queued until acked), or None when empty."""
        while self._queue:
            due, order, wire = self._queue[0]
            self.now = max(self.now, due)
            message = self._verified(order, wire)
            if message is not None:
                return message
        return None

    def receive_batch(self, limit: int = 10) -> list[Message]:
        """Up to ``limit`` messages due now (advancing the clock to the first one)."""
        if not self._queue:
            return []
        self.now = max(self.now, self._queue[0][0])
        found: list[Message] = []
        for _, order, wire in sorted(entry for entry in self._queue if entry[0] <= self.now):
            message = self._verified(order, wire)
            if message is not None and len(found) < limit:
                found.append(message)
        return found

    def ack(self, message: Message) -> None:
        """Remove a delivered message."""
        for order, decoded in self._decoded.items():
            if decoded is message:
                self._remove(order)
                return

    def _verified(self, order: int, wire: dict[str, Any]) -> Message | None:
        """The message of entry ``order``; None (the entry dropped) if it is forged."""
        message = self._decoded.get(order)
        if message is None:
            try:
                message = self._decoded[order] = self.signer.verify(wire)
            except ForgedMessageError:
                self._remove(order)
                return None
        return message

    def _remove(self, order: int) -> None:
        self._decoded.pop(order, None)
        for i, entry in enumerate(self._queue):
            if entry[1] == order:
                self._queue.pop(i)
                heapq.heapify(self._queue)
                return

    def __len__(self) -> int:
        return len(self._queue)


def _stored(
    record: ExecutionRecord, events: Sequence[HistoryEvent]
) -> tuple[ExecutionRecord, list[Chunk]]:
    """The copies of a write, refused as a serializing store would refuse them."""
    try:
        return _clone(record), frozen(events)
    except UnstorableValueError as exc:
        raise UnstorableDataError(record.execution_arn, str(exc)) from None


def _clone_lease(lease: TaskLease) -> TaskLease:
    return replace(lease, result=_clone(lease.result)) if lease.result is not None else lease


def _clone(value: Any) -> Any:
    """A private copy of ``value``, as a store that serializes would hand back.

    JSON round-trips through orjson (fast); anything orjson refuses (an
    integer beyond 64 bits, a dataclass) takes the slower deep copy.
    """
    if isinstance(value, ExecutionRecord):
        return replace(
            value,
            input=_clone(value.input),
            state=_clone(value.state),
            outbox=tuple(replace(m, body=_clone(m.body)) for m in value.outbox),
            attributes=_clone(value.attributes),
        )
    try:
        return orjson.loads(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
    except TypeError:  # orjson also refuses nesting deeper than 255 levels
        check(value)
    try:
        return copy.deepcopy(value)
    except RecursionError:  # deeper than the recursion limit: a JSON input the API accepted
        return _clone_deep(value)


def _clone_deep(value: Any) -> Any:
    """A copy of nested lists and dicts (other values shared), without recursion."""
    copies: dict[int, Any] = {}
    pending = [value]
    order: list[Any] = []
    while pending:
        node = pending.pop()
        if isinstance(node, (list, dict)) and id(node) not in copies:
            copies[id(node)] = [] if isinstance(node, list) else {}
            order.append(node)
            pending.extend(node if isinstance(node, list) else node.values())
    for node in reversed(order):  # children before parents
        target = copies[id(node)]
        if isinstance(node, list):
            target.extend(copies.get(id(item), item) for item in node)
        else:
            target.update((k, copies.get(id(v), v)) for k, v in node.items())
    return copies.get(id(value), value)
