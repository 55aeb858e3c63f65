"""An execution's partition coming and going: its creation and its purge.

:meth:`Partitions.create` writes a new execution's head, its first events and its
listing entry unless the ARN is taken (an expired execution's leftovers do not take
it: they are purged first); :meth:`Partitions.purge` deletes what is left of an
execution once DynamoDB's TTL has deleted its head (:mod:`stepflow.aws.sweeper`).
:class:`~stepflow.aws.dynamodb_log.DynamoDBLog` serves both through this class;
its later writes to the head (commits, the outbox) are its own.

When the first events fit one inline event item and carrying them pays
(:func:`~stepflow.aws.log_pending.worth_carrying_at_create`), the head carries them
(:mod:`stepflow.aws.log_pending`: the first commit copies them to their item) and the
create is two conditional puts, the listing entry's and the head's, instead of a
transaction of three items (the order workload's create: 4 write units instead of 8).
A transaction's event item found an expired execution's leftovers by its condition; a
carried create reads the partition first (one eventually consistent read of one item,
two when the ARN is new) and purges what it finds. A head seen there sends the create the
transaction's way: the ARN is almost always taken, and if the head is just expiring,
the event item's condition still finds the leftovers. The listing entry goes in before
the head (a crash between them leaves an entry without a head, which listings skip, never
a head unlisted), so a purge spares the entry of an execution started since the one it
purges (the sweeper's late or repeated purge), and a creator that purged puts the entry
again once its head is in (another creator's purge may have deleted it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from stepflow.aws.log_heads import HeadItems
from stepflow.aws.log_history import HistoryItems
from stepflow.aws.log_items import MAX_TRANSACTION_ITEMS
from stepflow.aws.log_listing import LISTING, listing_item
from stepflow.aws.log_pending import carried, worth_carrying_at_create
from stepflow.aws.log_table import HEAD as _HEAD
from stepflow.aws.log_table import LogUnavailableError, TableCall
from stepflow.aws.log_table import Rejected as _Rejected
from stepflow.aws.log_table import key as _key
from stepflow.aws.log_table import reasons as _reasons
from stepflow.aws.topology import LIST_INDEX_SK
from stepflow.engine.history_events import HistoryEvent, expanded
from stepflow.runtime.ports import ExecutionAlreadyExistsError, ExecutionRecord

CREATE_WINDOW = 3_600.0
"""Seconds: a listing entry this much older than a create's own start may be a concurrent
creator's (API timeouts and clock skew are far shorter; a retention is a day at least)."""


class Partitions:
    """Creates executions' partitions on one log table and purges what expired of them."""

    def __init__(
        self,
        table: str,
        call: TableCall,
        heads: HeadItems,
        history: HistoryItems,
        get: Callable[[str], ExecutionRecord | None],
        item_budget: int,
    ) -> None:
        self.table = table
        self.item_budget = item_budget
        self._call = call
        self._heads = heads
        self._history = history
        self._get = get
        """Reads the current head (strongly consistent) when a refused create names none."""

    def create(
        self, record: ExecutionRecord, events: Sequence[HistoryEvent]
    ) -> dict[str, Any] | None:
        """Insert the head and the first events unless the ARN is taken.

        Returns the head attributes that carry the events (:func:`.log_pending.carried`),
        or None when the head carries none.
        """
        head, *chunks = self._heads.sealed(record, expanded(events))
        listing = listing_item(record)
        if not chunks:
            self._create_head(record.execution_arn, head, listing)
            return None
        pending = carried(chunks)
        budget = self.item_budget
        if pending is not None and worth_carrying_at_create(
            head, chunks[0], pending, budget, listing
        ):
            arn = record.execution_arn
            found = self._partition(arn)
            # A head seen (most likely the ARN is taken, but it may be expiring right now):
            # the transaction's event item, conditioned on being new, finds leftovers then.
            if found != "taken":
                # After a purge the listing entry is put again once the head is in: another
                # purge (a creator's, or a duplicate of the sweeper's) may delete it before.
                purged = found == "leftovers"
                if purged:
                    self._purge_retried(arn, record.start_date)
                self._create_head(arn, {**head, **pending}, listing, relist=purged)
                return pending
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": head,
                    "ConditionExpression": "attribute_not_exists(pk)",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            *map(self._history.event_put, chunks),
        ]
        if listing is not None:  # written once, with the head (see log_listing)
            items.append(
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": listing,
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        for _ in range(5):
            try:
                self._call("transact_write_items", TransactItems=items)
                return None
            except _Rejected as rejected:
                reason = _reasons(rejected)[0]
                if reason.get("Code") == "TransactionConflict":
                    continue  # a concurrent create of the same ARN is in flight
                if reason.get("Code") != "ConditionalCheckFailed":
                    if any(r.get("Code") == "ConditionalCheckFailed" for r in _reasons(rejected)):
                        # History of an expired execution of this ARN that the sweeper
                        # has not deleted yet: the name is free again, as on AWS.
                        self.purge(record.execution_arn)
                        continue
                    raise LogUnavailableError(f"create cancelled: {reason}") from rejected
                existing = self._heads.record(reason["Item"]) if "Item" in reason else None
                existing = existing or self._get(record.execution_arn)
                if existing is None:
                    continue
                raise ExecutionAlreadyExistsError(existing) from None
        raise LogUnavailableError(f"{record.execution_arn}: create kept conflicting")

    def _purge_retried(self, execution_arn: str, start_date: float) -> None:
        """Purge leftovers, again while a concurrent purge (another creator's) conflicts.

        Never a head put over leftovers a purge may have left behind. A listing entry
        of an execution started up to :data:`CREATE_WINDOW` before ``start_date`` is kept:
        a concurrent creator's (a retried StartExecution), whose head may be about to go
        in; an expired execution's is a retention (a day at least) older.
        """
        for attempt in range(5):
            try:
                self.purge(execution_arn, keep_listed_from=start_date - CREATE_WINDOW)
                return
            except LogUnavailableError:
                if attempt == 4:
                    raise

    def _partition(self, execution_arn: str) -> str:
        """What the ARN's partition holds: ``taken``, ``leftovers`` or ``empty``.

        One item read, newest first from the head's key: the head itself when the ARN is
        taken, else the last event item left by an expired execution. When neither is
        there, one more, of the first item after the head: a listing entry or a lease
        record (``TK#``) left by a purge that stopped halfway (a purge deletes in key
        order; a leftover lease would refuse the new execution's claim of the same task,
        a leftover entry would list it under the old start date). Eventually consistent:
        leftovers are a retention old (a head seen may be gone: :meth:`create` then
        takes the transaction's way).
        """
        last = self._first(execution_arn, "sk <= :sk", _HEAD, forward=False)
        if last is not None:
            return "taken" if last == _HEAD else "leftovers"
        after = self._first(execution_arn, "sk > :sk", _HEAD, forward=True)
        return "empty" if after is None else "leftovers"

    def _first(self, execution_arn: str, condition: str, sk: str, *, forward: bool) -> str | None:
        """The sort key of the partition's first item under ``condition`` in that order."""
        page = self._call(
            "query",
            KeyConditionExpression=f"pk = :pk AND {condition}",
            ExpressionAttributeValues={
                ":pk": _key(execution_arn, _HEAD)["pk"],
                ":sk": {"S": sk},
            },
            ProjectionExpression="sk",
            ScanIndexForward=forward,
            Limit=1,
        )
        found = page.get("Items", [])
        return str(found[0]["sk"]["S"]) if found else None

    def _create_head(
        self,
        execution_arn: str,
        head: dict[str, Any],
        listing: dict[str, Any] | None,
        *,
        relist: bool = False,
    ) -> None:
        """Insert a head, without events or carrying them: one conditional PutItem.

        Half the write units of a one-item transaction (a map run's per-item
        result records are created this way). A leftover of an expired execution
        of this ARN is no obstacle to a head without events: its history items are
        not written (a head carrying events is created after a purge of them).
        A listed head's listing entry is put first, if there is none: a crash in
        between leaves an entry without a head, which listings skip; an entry left
        by a crash or an expired execution is replaced once the head is created (and,
        ``relist``, the entry is put again then in any case).
        """
        stale = listing is not None and (not self._put_new(listing) or relist)
        for _ in range(5):
            try:
                self._call(
                    "put_item",
                    Item=head,
                    ConditionExpression="attribute_not_exists(pk)",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                if stale and listing is not None:
                    self._call("put_item", Item=listing)
                return
            except _Rejected as rejected:
                if rejected.code == "TransactionConflictException":
                    continue  # a transaction on this head is in flight
                old = rejected.response.get("Item")
                existing = self._heads.record(old) if old else self._get(execution_arn)
                if existing is None:
                    continue
                raise ExecutionAlreadyExistsError(existing) from None
        raise LogUnavailableError(f"{execution_arn}: create kept conflicting")

    def _put_new(self, item: dict[str, Any]) -> bool:
        """Put ``item`` unless its key exists; whether it was written."""
        try:
            self._call("put_item", Item=item, ConditionExpression="attribute_not_exists(pk)")
        except _Rejected:  # it exists (or a transaction on it is in flight)
            return False
        return True

    def purge(self, execution_arn: str, *, keep_listed_from: float | None = None) -> int:
        """Delete what is left of an execution whose head is gone (TTL); returns how many.

        Each transaction deletes up to 99 items and checks that the head is still
        absent, so an execution started again under the same ARN meanwhile is never
        touched: then nothing more is deleted. A new execution's listing entry is put
        just before its head, so ``keep_listed_from`` (the sweeper's: just after the
        expired execution's start date) keeps an entry of an execution started since.
        A concurrent write surfaces as
        :class:`~stepflow.aws.log_table.LogUnavailableError` (retry the purge).
        """
        head_absent = {
            "ConditionCheck": {
                "TableName": self.table,
                "Key": _key(execution_arn, _HEAD),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        query: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": _key(execution_arn, _HEAD)["pk"]},
            "ProjectionExpression": "pk, sk, #listed",
            "ExpressionAttributeNames": {"#listed": LIST_INDEX_SK},
            "ConsistentRead": True,
            "Limit": MAX_TRANSACTION_ITEMS - 1,
        }
        deleted = 0
        while True:
            page = self._call("query", **query)
            items = page.get("Items", [])
            if any(item["sk"]["S"] == _HEAD for item in items):
                return deleted  # the head exists: the ARN is live again
            keys = [
                {"pk": item["pk"], "sk": item["sk"]}
                for item in items
                if not _listed_since(item, keep_listed_from)
            ]
            deletes = [{"Delete": {"TableName": self.table, "Key": key}} for key in keys]
            try:
                if deletes:
                    self._call("transact_write_items", TransactItems=[head_absent, *deletes])
            except _Rejected as rejected:
                if _reasons(rejected)[0].get("Code") == "ConditionalCheckFailed":
                    return deleted
                raise LogUnavailableError(f"purge cancelled: {_reasons(rejected)}") from None
            deleted += len(deletes)
            if "LastEvaluatedKey" not in page:
                return deleted
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _listed_since(item: dict[str, Any], start_date: float | None) -> bool:
    """Whether ``item`` is the listing entry of an execution started at ``start_date`` or later."""
    if start_date is None or item["sk"]["S"] != LISTING:
        return False
    listed = item.get(LIST_INDEX_SK, {}).get("S", "")
    try:
        return float(listed.split("#", 1)[0]) >= start_date
    except ValueError:  # not an entry this module wrote: deleted with the rest
        return False
