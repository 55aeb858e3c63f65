"""Batch requests of the DynamoDB log: many heads read or written per request.

``BatchGetItem`` reads up to :data:`MAX_GET` items per request and ``BatchWriteItem``
writes up to :data:`MAX_WRITE`; either may leave part of a request undone (throttling,
the 16 MB response limit), returned as ``UnprocessedKeys``/``UnprocessedItems``, which
are sent again after a short backoff, up to :data:`ATTEMPTS` times, before the call
fails with :class:`~stepflow.aws.log_table.LogUnavailableError`. Neither request takes
a condition: a batch write replaces whatever item has the key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from stepflow.aws.log_table import LogUnavailableError, TableCall

MAX_GET = 100
"""Keys per BatchGetItem request (DynamoDB's limit)."""
MAX_WRITE = 25
"""Items per BatchWriteItem request (DynamoDB's limit)."""
ATTEMPTS = 8
"""Requests per chunk before unprocessed keys or items count as an outage."""
BACKOFF_SECONDS = 0.05
"""The first wait before sending unprocessed keys or items again (doubled each time)."""


def batch_get(
    call: TableCall,
    table: str,
    keys: Sequence[dict[str, Any]],
    *,
    sleep: Callable[[float], None],
) -> Iterator[dict[str, Any]]:
    """The items stored under ``keys`` (distinct keys), strongly consistent, in no order.

    Absent keys yield nothing.
    """
    for start in range(0, len(keys), MAX_GET):
        pending: list[dict[str, Any]] = list(keys[start : start + MAX_GET])
        for attempt in range(ATTEMPTS):
            if attempt:
                sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
            response = call(
                "batch_get_item",
                RequestItems={table: {"Keys": pending, "ConsistentRead": True}},
            )
            yield from response.get("Responses", {}).get(table, [])
            pending = response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
            if not pending:
                break
        else:
            raise LogUnavailableError(f"BatchGetItem left {len(pending)} keys unread")


def batch_put(
    call: TableCall,
    table: str,
    items: Sequence[dict[str, Any]],
    *,
    sleep: Callable[[float], None],
) -> None:
    """Write ``items`` (distinct keys), each replacing the item of its key, unconditionally."""
    for start in range(0, len(items), MAX_WRITE):
        pending = [{"PutRequest": {"Item": item}} for item in items[start : start + MAX_WRITE]]
        for attempt in range(ATTEMPTS):
            if attempt:
                sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
            response = call("batch_write_item", RequestItems={table: pending})
            pending = response.get("UnprocessedItems", {}).get(table, [])
            if not pending:
                break
        else:
            raise LogUnavailableError(f"BatchWriteItem left {len(pending)} items unwritten")
