"""History items of the DynamoDB log: ``sk = EV#<first event id, 12 digits>``.

A decision's events are stored as JSON lists, usually one item per decision,
split across several items (each named by its first event id) when they do
not fit one; :meth:`HistoryItems.history` pages through them with the token
``<item's first event id>:<offset in item>``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from stepflow.aws.log_items import (
    MAX_TRANSACTION_ITEMS,
    Draft,
    ItemPacker,
    chunk_ranges,
    item_size,
)
from stepflow.aws.log_table import TableCall
from stepflow.aws.log_table import key as _key
from stepflow.data.serialize import dumps as _dumps
from stepflow.runtime.ports import HistoryPage

_MAX_ID = 999_999_999_999


class HistoryItems:
    """Writes (as transaction items) and pages the event items of one log table."""

    def __init__(self, table: str, call: TableCall, items: ItemPacker) -> None:
        self.table = table
        self._call = call
        self._items = items

    def history(
        self, execution_arn: str, *, next_token: str | None = None, limit: int = 1000
    ) -> HistoryPage:
        """A page of events; the token is ``<item's first event id>:<offset in item>``."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        start_id, skip = _parse_token(next_token)
        events: list[dict[str, Any]] = []
        for first_id, item_events in self._event_items(execution_arn, start_id, skip, limit):
            begin = skip if first_id == start_id else 0
            for i in range(begin, len(item_events)):
                if len(events) >= limit:
                    return HistoryPage(events, f"{first_id}:{i}")
                events.append(item_events[i])
        return HistoryPage(events, None)

    def history_from(self, execution_arn: str, first: int, *, limit: int = 1000) -> HistoryPage:
        """The page of events from id ``first`` on, reading no item before the one holding it.

        One keys-only Query (newest first, one item) finds that item.
        """
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
            return self.history(execution_arn, limit=limit)
        start = int(found[0]["sk"]["S"][3:])
        return self.history(execution_arn, next_token=f"{start}:{first - start}", limit=limit)

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

    def _event_items(
        self, execution_arn: str, start_id: int, skip: int, limit: int
    ) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        """Event items from ``start_id`` on, in order, read lazily.

        Event ids are dense, so the items up to ``EV#<next id + limit>`` hold the
        page and the event after it; a second open-ended range covers sparse ids.
        """
        upper = min(start_id + skip + limit, _MAX_ID)
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
