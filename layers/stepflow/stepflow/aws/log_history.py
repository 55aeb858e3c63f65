"""History items of the DynamoDB log: ``sk = EV#<first event id, 12 digits>``.

A decision's events are stored as JSON lists, usually one item per decision,
split across several items (each named by its first event id) when they do
not fit one; :meth:`HistoryItems.history` pages through them with the token
``<item's first event id>:<offset in item>``, or newest first (``reverse``) with
``r<item's first event id>:<events of the item still to give>``: a reverse page
queries the key range below its token in descending order, so it reads what a
forward page reads, wherever it is in the history.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

from stepflow.aws.log_items import (
    MAX_TRANSACTION_ITEMS,
    Draft,
    ItemPacker,
    chunk_ranges,
    item_size,
)
from stepflow.aws.log_pending import read_pending
from stepflow.aws.log_table import TableCall
from stepflow.aws.log_table import key as _key
from stepflow.data.serialize import dumps as _dumps
from stepflow.runtime.ports import HistoryPage

_MAX_ID = 999_999_999_999

Item = tuple[int, list[dict[str, Any]]]
"""An event item as read: its first event id and its events."""


class HistoryItems:
    """Writes (as transaction items) and pages the event items of one log table."""

    def __init__(self, table: str, call: TableCall, items: ItemPacker) -> None:
        self.table = table
        self._call = call
        self._items = items

    def history(
        self,
        execution_arn: str,
        *,
        next_token: str | None = None,
        limit: int = 1000,
        reverse: bool = False,
    ) -> HistoryPage:
        """A page of events, oldest or (``reverse``) newest first; the token names an item."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        position = _parse_reverse_token(next_token) if reverse else _parse_token(next_token)
        pending = self._pending(execution_arn)  # first: the items read next cover the rest
        if reverse:
            return self._reverse_page(execution_arn, position, limit, pending)
        assert position is not None
        return self._forward_page(execution_arn, position, limit, pending)

    def _forward_page(
        self, execution_arn: str, position: tuple[int, int], limit: int, pending: Item | None
    ) -> HistoryPage:
        start_id, skip = position
        events: list[dict[str, Any]] = []
        items = self._event_items(execution_arn, start_id, skip, limit)
        for first_id, item_events in _ascending(items, pending, start_id):
            begin = skip if first_id == start_id else 0
            for i in range(begin, len(item_events)):
                if len(events) >= limit:
                    return HistoryPage(events, f"{first_id}:{i}")
                events.append(item_events[i])
        return HistoryPage(events, None)

    def history_from(self, execution_arn: str, first: int, *, limit: int = 1000) -> HistoryPage:
        """The page of events from id ``first`` on, reading no item before the one holding it.

        One keys-only Query (newest first, one item) finds that item, unless it is the
        head's pending events (:mod:`.log_pending`).
        """
        pending = self._pending(execution_arn)
        if pending is not None and pending[0] <= first:
            return self._forward_page(
                execution_arn, (pending[0], first - pending[0]), limit, pending
            )
        found = self._call(
            "query",
            KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
            ExpressionAttributeValues={
                ":pk": {"S": f"EX#{execution_arn}"},
                ":low": {"S": _ev_sk(0)},
                ":high": {"S": _ev_sk(min(max(first, 0), _MAX_ID))},
            },
            ProjectionExpression="sk",
            ScanIndexForward=False,
            ConsistentRead=True,
            Limit=1,
        ).get("Items", [])
        if not found:
            return self._forward_page(execution_arn, (0, 0), limit, pending)
        start = int(found[0]["sk"]["S"][3:])
        return self._forward_page(execution_arn, (start, first - start), limit, pending)

    def event_drafts(
        self, execution_arn: str, seq: int, events: Sequence[dict[str, Any]]
    ) -> list[Draft]:
        """The events as JSON lists in items of about ``item_budget`` bytes each.

        One item in the common case; never so many that the transaction (head
        included) exceeds DynamoDB's item count: the packer offloads instead.
        """
        parts = [_dumps(event).encode() for event in events]
        keys = {**_key(execution_arn, _ev_sk(0)), "seq": {"N": str(seq)}}
        overhead = item_size({**keys, "events_z": {"B": b"[]"}})
        sizes = [len(part) + 1 for part in parts]
        ranges = chunk_ranges(sizes, self._items.item_budget - overhead, MAX_TRANSACTION_ITEMS - 1)
        return [
            Draft(
                {**_key(execution_arn, _ev_sk(_event_id(events[start]))), "seq": keys["seq"]},
                {"events": b"[" + b",".join(parts[start:end]) + b"]"},
            )
            for start, end in ranges
        ]

    def event_put(self, item: dict[str, Any]) -> dict[str, Any]:
        """The transaction item that writes a sealed event item (never over an existing one)."""
        return {
            "Put": {
                "TableName": self.table,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(sk)",
            }
        }

    def _pending(self, execution_arn: str) -> Item | None:
        """The head's pending events as ``(first event id, events)`` (one read), or None."""
        stored = read_pending(self._call, execution_arn)
        item = stored[1] if stored is not None else None
        if item is None:
            return None
        return int(item["sk"]["S"][3:]), self._items.read(item, "events", [])

    def _reverse_page(
        self,
        execution_arn: str,
        position: tuple[int, int] | None,
        limit: int,
        pending: Item | None,
    ) -> HistoryPage:
        """Up to ``limit`` events before ``position``, newest first.

        A page that ends at the first event of an item has more before it when
        that event's id is above 1: the engine's event ids are dense from 1, so
        nothing is read to find out (a history with gaps may end on an empty page).
        """
        events: list[dict[str, Any]] = []
        for first_id, item_events in self._items_before(execution_arn, position, limit, pending):
            for i in range(len(item_events) - 1, -1, -1):
                events.append(item_events[i])
                if len(events) < limit:
                    continue
                if i > 0 or first_id > 1:
                    return HistoryPage(events, f"r{first_id}:{i}")
                if first_id == 1 and self._any_below(execution_arn, 1):
                    return HistoryPage(events, "r1:0")
                return HistoryPage(events, None)
        return HistoryPage(events, None)

    def _items_before(
        self,
        execution_arn: str,
        position: tuple[int, int] | None,
        limit: int,
        pending: Item | None,
    ) -> Iterator[Item]:
        """The event items before ``position``, newest first, read lazily.

        First the item the position is in (the newest item on a first page). With
        dense ids the rest of the page are the ids just below that item: one
        descending query reads the items that start among them, and one more item
        (``Limit`` 1) the page's oldest events. Gaps in the ids cost further queries.
        """
        if position is None:  # the first page: the newest item
            found = next(self._query(execution_arn, 0, _MAX_ID, [1], pending), None)
            if found is None:
                return
            first_id, taken = found[0], len(found[1])
            yield found
            high = first_id - 1
        else:
            first_id, taken = position
            high = first_id if taken else first_id - 1
        low = max(0, first_id - max(0, limit - taken))
        if low <= high:
            items = self._query(execution_arn, low, high, [1000], pending)
            if taken and position is not None:  # the token's item comes first, or it is forged
                token_item = next(items, None)
                if token_item is None or token_item[0] != first_id or len(token_item[1]) < taken:
                    raise ValueError(f"invalid history token r{first_id}:{taken}")
                yield first_id, token_item[1][:taken]
            yield from items
        if low > 0:
            yield from self._query(execution_arn, 0, low - 1, [1, limit + 1], pending)

    def _any_below(self, execution_arn: str, event_id: int) -> bool:
        """Whether an event item starts below ``event_id`` (at most one item read)."""
        return next(self._query(execution_arn, 0, event_id - 1, [1], None), None) is not None

    def _query(
        self,
        execution_arn: str,
        low: int,
        high: int,
        batches: Sequence[int],
        pending: Item | None,
    ) -> Iterator[Item]:
        """Event items starting at ids ``low`` to ``high``, newest first, read lazily.

        Each request reads at most the next of ``batches`` items (the last repeats);
        ``pending`` (the head's events) is among them if it starts in the range.
        """
        if pending is None or not low <= pending[0] <= high:
            return self._stored(execution_arn, low, high, batches)
        # The head was read first: what was committed since is left to the next read.
        return _descending(self._stored(execution_arn, low, pending[0], batches), pending)

    def _stored(
        self, execution_arn: str, low: int, high: int, batches: Sequence[int]
    ) -> Iterator[Item]:
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": {
                ":pk": {"S": f"EX#{execution_arn}"},
                ":low": {"S": _ev_sk(low)},
                ":high": {"S": _ev_sk(high)},
            },
            "ScanIndexForward": False,
            "ConsistentRead": True,
        }
        for n in itertools.count():
            kwargs["Limit"] = batches[min(n, len(batches) - 1)]
            response = self._call("query", **kwargs)
            for item in response.get("Items", []):
                yield int(item["sk"]["S"][3:]), self._items.read(item, "events", [])
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _event_items(
        self, execution_arn: str, start_id: int, skip: int, limit: int
    ) -> Iterator[Item]:
        """Event items from ``start_id`` on, in order, read lazily.

        Event ids are dense, so the items up to ``EV#<next id + limit>`` hold the
        page and the event after it; a second open-ended range covers sparse ids.
        """
        # Without a token the first event is id 1 (the engine's), not 0: the range must
        # reach id limit + 1, or the check for a next page reads limit + 1 more items.
        upper = min(max(start_id + skip, 1) + limit, _MAX_ID)
        ranges = [
            (_ev_sk(start_id), _ev_sk(upper), 1000),
            (_ev_sk(upper), _ev_sk(_MAX_ID), limit + 1),
        ]
        for n, (low, high, batch) in enumerate(ranges):
            kwargs: dict[str, Any] = {
                "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
                "ExpressionAttributeValues": {
                    ":pk": {"S": f"EX#{execution_arn}"},
                    ":low": {"S": low},
                    ":high": {"S": high},
                },
                "ConsistentRead": True,
                "Limit": batch,
            }
            while True:
                response = self._call("query", **kwargs)
                for item in response.get("Items", []):
                    if n == 0 or item["sk"]["S"] != low:  # the second range excludes low
                        yield int(item["sk"]["S"][3:]), self._items.read(item, "events", [])
                if "LastEvaluatedKey" not in response:
                    break
                kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _ascending(items: Iterator[Item], pending: Item | None, start_id: int) -> Iterator[Item]:
    """``items`` (oldest first) with the head's pending events in their place, once."""
    if pending is None or pending[0] < start_id:
        yield from items
        return
    placed = False
    for item in items:
        if not placed and item[0] >= pending[0]:
            placed = True
            yield pending
            if item[0] == pending[0]:  # their copy (see _descending)
                continue
        yield item
    if not placed:
        yield pending


def _descending(items: Iterator[Item], pending: Item) -> Iterator[Item]:
    """The head's pending events, then ``items`` (newest first, none newer than them).

    An event item of the same first id is their copy (made by a commit that then lost
    its race, or died, or a later one): given once.
    """
    yield pending
    for item in items:
        if item[0] != pending[0]:
            yield item


def last_id(events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The head's ``last_event_id`` attribute after ``events`` (none if there are none)."""
    return {"last_event_id": {"N": str(_event_id(events[-1]))}} if events else {}


def _event_id(event: dict[str, Any]) -> int:
    event_id = event.get("id")
    if not isinstance(event_id, int) or event_id < 0:
        raise ValueError(f"a history event needs a non-negative integer 'id', got {event_id!r}")
    return event_id


def _ev_sk(event_id: int) -> str:
    return f"EV#{event_id:012d}"


def _parse_reverse_token(token: str | None) -> tuple[int, int] | None:
    """``(item's first event id, events of it still to give)``, None for the first page."""
    if not token:
        return None
    if not token.startswith("r") or len(token) < 2:
        raise ValueError(f"invalid history token {token!r} (not a reverse one)")
    return _parse_token(token[1:])


def _parse_token(token: str | None) -> tuple[int, int]:
    if not token:
        return 0, 0
    try:
        first, _, offset = token.partition(":")
        start, skip = int(first), int(offset)
    except ValueError:
        raise ValueError(f"invalid history token {token!r}") from None
    if not (0 <= start <= _MAX_ID and skip >= 0):
        raise ValueError(f"invalid history token {token!r}")
    return start, skip
