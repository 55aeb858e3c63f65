"""The coordination log on one DynamoDB table (``pk``/``sk``, on-demand).

Items of one execution share the partition ``pk = EX#<execution arn>``:

- ``sk = HEAD``: the head: ``seq`` (N), ``status``, ``name``,
  ``state_machine_arn``, ``start_date``/``stop_date`` (N), ``last_event_id``
  (N) and the JSON documents ``input``, ``state``, ``outbox``, ``attributes``
  (the state and outbox without what the head already holds, compressed primed by
  the input and the state: :mod:`stepflow.aws.head_docs`; ``attributes`` absent
  when empty);
- ``sk = EV#<first event id, 12 digits>``: a decision's events as one JSON
  list (``events``); a decision with very many events is split across several
  items (each named by its first event id) written by the same transaction. The
  last decision's events, when they fit one inline item, are in the head instead
  (``ev_sk``, ``ev_seq``, ``ev``/``ev_z``) until the next commit with events copies
  them to their item (:mod:`stepflow.aws.log_pending`);
- ``sk = TK#<task id>``: a task attempt's lease record
  (:class:`~stepflow.runtime.leases.TaskLease`: ``version``, ``delivery``,
  ``owner``, ``lease_until``, ``released``, ``expired``, the queue message's
  ``queue``/``receipt``, ``result``), written only conditionally on
  ``version``; a commit fenced by it checks (or writes) it in its transaction.

A finished execution's head carries ``expires_at`` (its stop date plus the
retention, 90 days by default), the table's TTL attribute; when DynamoDB
deletes the head, :mod:`stepflow.aws.sweeper` (on the table's stream) calls
:meth:`DynamoDBLog.purge` to delete the rest of the partition. A redriven
execution loses the attribute again.

A JSON document longer than ``compress_above`` bytes (256 by default: a write
is billed per KB of the whole item, so even a small document's compression often
saves a unit, e.g. a map run child's task message or its last events) is stored
zlib-compressed (with the preset dictionary of :mod:`stepflow.aws.log_zdict`) in a
binary attribute named ``<name>_z`` instead, when that is shorter. DynamoDB caps
an item at 400 KB and a transaction at 4 MB: with a ``PayloadStore`` (S3), the
largest documents of an item over ``item_budget`` (or of a transaction over
``transaction_budget``) are written to the store first and the item keeps a
reference ``<name>_ref`` (see :mod:`stepflow.aws.log_items`); reads resolve it.
Without a store, such a write raises :class:`PayloadTooLargeError` before
reaching DynamoDB.

Every write is conditional: a commit is one ``UpdateItem`` of the head carrying its
events, conditioned on ``seq`` (after the copy of the events it replaces, a put
conditioned on their item being absent or theirs already); events that do not fit one
inline item, or a lease fencing the commit, make it one ``TransactWriteItems`` of the
head update with the event items (each conditioned on not existing) and the lease.
Throttling and other infrastructure failures surface as :class:`LogUnavailableError`.

This module writes and reads heads (their items are built and read by
:mod:`stepflow.aws.log_heads`; a new execution's are written, and an expired one's
leftovers purged, by :mod:`stepflow.aws.log_lifecycle`); the other items live next
to it: :mod:`stepflow.aws.log_history` (event items and history pages),
:mod:`stepflow.aws.log_leases` (lease records), :mod:`stepflow.aws.log_listing`
(the listing index), :mod:`stepflow.aws.log_items` (packing items within
DynamoDB's limits) and :mod:`stepflow.aws.log_table` (the request wrapper, errors, keys).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import boto3

from stepflow.aws.log_batch import batch_get, batch_put
from stepflow.aws.log_claims import ClaimPlaces
from stepflow.aws.log_heads import HeadItems, head_update
from stepflow.aws.log_history import HistoryItems
from stepflow.aws.log_items import (
    ITEM_BUDGET,
    TRANSACTION_BUDGET,
    ItemPacker,
    doc_names,
    item_size,
)
from stepflow.aws.log_items import MAX_ITEM_BYTES as MAX_ITEM_BYTES
from stepflow.aws.log_items import PayloadTooLargeError as PayloadTooLargeError
from stepflow.aws.log_leases import LeaseRecords
from stepflow.aws.log_lifecycle import Partitions
from stepflow.aws.log_listing import list_heads, listing_item
from stepflow.aws.log_pending import PendingEvents, carried, pending_item, worth_carrying
from stepflow.aws.log_table import CONFLICTS as _CONFLICTS
from stepflow.aws.log_table import HEAD as _HEAD
from stepflow.aws.log_table import LogIntegrityError as LogIntegrityError
from stepflow.aws.log_table import LogUnavailableError as LogUnavailableError
from stepflow.aws.log_table import Rejected as _Rejected
from stepflow.aws.log_table import call_table
from stepflow.aws.log_table import key as _key
from stepflow.aws.log_table import reasons as _reasons
from stepflow.aws.topology import (
    DEFAULT_RETENTION_DAYS,
    table_definition,
)
from stepflow.engine.history_events import HistoryEvent, expanded
from stepflow.runtime.leases import LeaseFence, TaskLease
from stepflow.runtime.messages import Message
from stepflow.runtime.payloads import (
    PayloadCorruptError,
    PayloadNotFoundError,
    PayloadStore,
    PayloadStoreUnavailableError,
)
from stepflow.runtime.ports import ConflictError, ExecutionRecord, HistoryPage

COMPRESS_ABOVE = 256
"""JSON documents longer than this (bytes) are stored compressed by default."""


def create_table(client: Any, table_name: str) -> None:
    """Create the log table (see :mod:`stepflow.aws.topology`) and wait until it is active."""
    client.create_table(**table_definition(table_name))
    client.get_waiter("table_exists").wait(TableName=table_name)


class DynamoDBLog:
    """A :class:`~stepflow.runtime.ports.CoordinationLog` on a DynamoDB table."""

    def __init__(
        self,
        table_name: str,
        *,
        client: Any = None,
        compress_above: int = COMPRESS_ABOVE,
        payloads: PayloadStore | None = None,
        item_budget: int = ITEM_BUDGET,
        transaction_budget: int = TRANSACTION_BUDGET,
        retention_seconds: int = DEFAULT_RETENTION_DAYS * 86_400,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        claims_in_events: bool = True,
    ) -> None:
        self.table = table_name
        self.clock = clock
        self._sleep = sleep
        """Stamps each head's commit time (the outbox repair job compares it with its own)."""
        self.retention_seconds = retention_seconds
        self.compress_above = compress_above
        self.payloads = payloads
        self._client: Any = client or boto3.client("dynamodb")
        self._items = ItemPacker(
            compress_above=compress_above,
            item_budget=item_budget,
            transaction_budget=transaction_budget,
            offload=self._offload if payloads is not None else None,
            fetch=self._fetch,
        )
        self._leases = LeaseRecords(table_name, self._call, self._items)
        self._pending = PendingEvents(table_name, self._call)
        self._claims = ClaimPlaces(self._call, self._pending, claims_in_events)
        self._history = HistoryItems(table_name, self._call, self._items)
        # Through ``self``: the clock and the retention are read at each write, as before.
        self._heads = HeadItems(
            self._items, self._history, lambda: self.clock(), lambda: self.retention_seconds
        )
        self._partitions = Partitions(
            table_name,
            self._call,
            self._heads,
            self._history,
            lambda arn: self.get(arn),
            item_budget,
        )

    def create(self, record: ExecutionRecord, events: Sequence[HistoryEvent]) -> None:
        """Insert the head and the first events unless the ARN is taken (:mod:`.log_lifecycle`)."""
        arn = record.execution_arn
        try:
            carrying = self._partitions.create(record, events)
        except Exception:
            self._pending.cache.forget(arn)
            raise
        item = None if carrying is None else pending_item({**_key(arn, _HEAD), **carrying})
        self._pending.cache.remember(arn, (record.seq, float(record.start_date)), item)

    def purge(self, execution_arn: str, *, keep_listed_from: float | None = None) -> int:
        """Delete what is left of an execution whose head is gone (TTL); returns how many.

        Never touches an execution started again under the same ARN, nor (with
        ``keep_listed_from``) the listing entry of one started since (see
        :meth:`.log_lifecycle.Partitions.purge`); a concurrent write surfaces as
        :class:`LogUnavailableError` (retry the purge).
        """
        return self._partitions.purge(execution_arn, keep_listed_from=keep_listed_from)

    def get(self, execution_arn: str) -> ExecutionRecord | None:
        """The current head (strongly consistent read), or None."""
        response = self._call("get_item", Key=_key(execution_arn, _HEAD), ConsistentRead=True)
        item = response.get("Item")
        if not item:
            return None
        self._pending.cache.remember_head(item)
        return self._heads.record(item)

    def get_many(self, execution_arns: Sequence[str]) -> list[ExecutionRecord | None]:
        """The current heads, in order (None where absent): BatchGetItem, 100 keys a request."""
        unique = list(dict.fromkeys(execution_arns))  # a request may not name a key twice
        keys = [_key(arn, _HEAD) for arn in unique]
        found = {}
        for item in batch_get(self._call, self.table, keys, sleep=self._sleep):
            self._pending.cache.remember_head(item)
            found[item["pk"]["S"][3:]] = self._heads.record(item)
        return [found.get(arn) for arn in execution_arns]

    def put_many(self, records: Sequence[ExecutionRecord]) -> None:
        """Replace the heads of ``records`` unconditionally: BatchWriteItem, 25 a request.

        Such a head carries no pending events (log_pending): its writer (a map run's
        EXPRESS batch) never commits events to these records.
        """
        heads: dict[str, dict[str, Any]] = {}
        listings: dict[str, dict[str, Any]] = {}
        for record in records:  # all sealed first: an unstorable one writes nothing
            # Without events a record is one item; the last record of an ARN wins.
            heads[record.execution_arn] = self._heads.sealed(record, [])[0]
            listing = listing_item(record)
            if listing is not None:
                listings[record.execution_arn] = listing
        items = [*listings.values(), *heads.values()]  # entries first: never a head unlisted
        for record in records:
            self._pending.cache.forget(record.execution_arn)
        batch_put(self._call, self.table, items, sleep=self._sleep)

    def commit(
        self,
        record: ExecutionRecord,
        expected_seq: int,
        events: Sequence[HistoryEvent],
        *,
        fence: LeaseFence | None = None,
    ) -> None:
        """Append ``events`` and replace the head, iff the head is at ``expected_seq``.

        One conditional ``UpdateItem`` whose head carries the events when they fit one
        inline event item and carrying them pays (:mod:`.log_pending`), else a
        transaction with their items; either after copying out the events the head
        carried. A ``fence`` adds the lease item (a transaction): a ``ConditionCheck`` on
        its version, or (with ``fence.new``) a conditional ``Put``.
        """
        arn = record.execution_arn
        if events and record.seq <= expected_seq:
            raise ValueError(f"{arn}: a commit with events must move the seq past {expected_seq}")
        head, *chunks = self._heads.sealed(record, expanded(events))
        budget = self._items.item_budget
        pending = carried(chunks) if events else None
        if pending is not None and not worth_carrying(head, chunks[0], pending, budget):
            pending = None
        start = float(record.start_date)
        expected = (expected_seq, start)
        replacing, flushed = bool(events), None
        if replacing:
            flushed = self._pending.flush(arn, expected)
        else:  # the head keeps its pending events, unless with the new head they are too large
            kept = carried([item]) if (item := self._pending.at(arn, expected)) else None
            if kept is not None and item_size({**head, **kept}) > budget:
                flushed = self._pending.flush(arn, expected)
                replacing = True
        update = head_update(
            self.table, head, expected_seq, pending, replace_events=replacing, flushed=flushed
        )
        puts = [self._history.event_put(chunk) for chunk in chunks] if pending is None else []
        fenced = [self._leases.fence_item(fence)] if fence is not None else []
        if not puts and not fenced:
            try:
                self._call("update_item", **update)
            except _Rejected:
                self._pending.cache.forget(arn)  # the head is not what this log believed
                raise ConflictError(arn, expected_seq) from None
            except Exception:
                self._pending.cache.forget(arn)
                raise
            self._pending.committed(arn, (record.seq, start), expected, replacing, pending)
            return
        try:
            self._call("transact_write_items", TransactItems=[{"Update": update}, *puts, *fenced])
        except _Rejected as rejected:
            self._pending.cache.forget(arn)
            reasons = _reasons(rejected)
            head_reason = reasons[0]
            lease_reason = reasons[1 + len(puts)] if len(reasons) > 1 + len(puts) else {}
            if head_reason.get("Code") in _CONFLICTS or (
                fence is not None and lease_reason.get("Code") in _CONFLICTS
            ):
                raise ConflictError(arn, expected_seq) from None
            for put, reason in zip(puts, reasons[1:], strict=False):
                if reason.get("Code") == "ConditionalCheckFailed":
                    sk = put["Put"]["Item"]["sk"]["S"]
                    raise LogIntegrityError(f"{arn}: history item {sk} exists already") from None
            raise LogUnavailableError(f"commit cancelled: {head_reason}") from rejected
        except Exception:
            self._pending.cache.forget(arn)
            raise
        self._pending.committed(arn, (record.seq, start), expected, replacing, pending)

    def clear_outbox(self, execution_arn: str, seq: int) -> None:
        """Empty the outbox if the head is still at ``seq`` (else do nothing)."""
        with contextlib.suppress(_Rejected):
            self._call(
                "update_item",
                Key=_key(execution_arn, _HEAD),
                UpdateExpression="SET #o = :empty REMOVE #oz, #or",
                ConditionExpression="#seq = :seq AND (#o <> :empty OR "
                "attribute_exists(#oz) OR attribute_exists(#or))",
                ExpressionAttributeNames={
                    "#seq": "seq",
                    **dict(zip(("#o", "#oz", "#or"), doc_names("outbox"), strict=True)),
                },
                ExpressionAttributeValues={":seq": {"N": str(seq)}, ":empty": {"S": "[]"}},
            )

    def keep_outbox(self, record: ExecutionRecord, messages: Sequence[Message]) -> None:
        """Make the outbox ``messages`` if the head is still at ``record.seq`` (else nothing).

        ``record`` is rewritten as its commit wrote it, but for its outbox: the documents
        are packed together (the outbox primed by the state) and the head's seq is kept.
        """
        with contextlib.suppress(ConflictError):
            self.commit(replace(record, outbox=tuple(messages)), record.seq, [])

    def history(
        self,
        execution_arn: str,
        *,
        next_token: str | None = None,
        limit: int = 1000,
        reverse: bool = False,
    ) -> HistoryPage:
        """A page of events, oldest or (``reverse``) newest first (:mod:`.log_history`)."""
        return self._history.history(
            execution_arn, next_token=next_token, limit=limit, reverse=reverse
        )

    def history_from(self, execution_arn: str, first: int, *, limit: int = 1000) -> HistoryPage:
        """The page of events from event id ``first`` on, reading no item before its own."""
        return self._history.history_from(execution_arn, first, limit=limit)

    def lease(self, execution_arn: str, task_id: str) -> TaskLease | None:
        """The attempt's lease record (strongly consistent read), or None."""
        place = self._claims.place(execution_arn, task_id)
        return self._leases.lease(execution_arn, task_id, place)

    def put_lease(self, lease: TaskLease) -> None:
        """Write ``lease`` iff the stored record is at the version before it.

        A commit's first task group's record may live in its event item, and its claim
        copy the events the head carries (:mod:`.log_claims`).
        """
        arn = lease.execution_arn
        place = self._claims.place(arn, lease.task_id)
        self._leases.put_lease(lease, place)
        if place is not None and place.head is not None and lease.version == 1:
            self._pending.cache.mark_copied(arn, place.head)

    def list_executions(
        self,
        state_machine_arn: str,
        *,
        status: str | None = None,
        next_token: str | None = None,
        limit: int = 100,
    ) -> tuple[list[ExecutionRecord], str | None]:
        """Executions of a state machine, newest first, through the listing index."""
        return list_heads(
            self._call,
            self.get_many,
            state_machine_arn,
            status=status,
            next_token=next_token,
            limit=limit,
        )

    def item_events(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        """The history events stored in an ``EV#`` item (e.g. a stream record's image).

        Decoded as :meth:`history` decodes them: plain, compressed or offloaded.
        """
        events: list[dict[str, Any]] = self._items.read(item, "events", [])
        return events

    def head_record(self, item: dict[str, Any]) -> ExecutionRecord:
        """The record stored in a head item (e.g. a stream record's image)."""
        return self._heads.record(item)

    # -- helpers ---------------------------------------------------------------

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """Call the client; failed conditions become :class:`_Rejected`, outages wrapped."""
        return call_table(self._client, self.table, operation, **kwargs)

    def _offload(self, data: bytes) -> str:
        assert self.payloads is not None  # only called when a store is configured
        try:
            return self.payloads.put(data)
        except PayloadStoreUnavailableError as exc:
            raise LogUnavailableError(f"payload store: {exc}") from exc

    def _fetch(self, key: str) -> bytes:
        if self.payloads is None:
            raise LogIntegrityError(f"the log references payload {key} but has no PayloadStore")
        try:
            return self.payloads.get(key)
        except PayloadStoreUnavailableError as exc:
            raise LogUnavailableError(f"payload store: {exc}") from exc
        except (PayloadNotFoundError, PayloadCorruptError) as exc:
            raise LogIntegrityError(f"referenced payload {key}: {exc}") from exc
