"""Listing a state machine's executions, newest first, through the log's listing index.

A listed execution has one small listing entry next to its head, ``sk = LIST``,
carrying ``LIST_INDEX_PK = EXL#<unqualified state machine arn>`` (a map run's
children: ``EXL#<map run arn>``) and ``LIST_INDEX_SK = <start date>#<name>`` (see
:mod:`stepflow.aws.topology`). The entry is written once, when the execution is
created, and never changes: the head, rewritten at every commit, is not in the
index, so a commit writes no index copy of it (the index's projection is ALL: a
head in it would be copied, whole, on every write). A page is one query of the
index and one consistent ``BatchGetItem`` of the page's heads; the status filter
is applied to the heads read. Heads written before the entries existed carry the
index keys themselves and are listed the same way. The page token is the last
listed item's index key, base64-encoded JSON.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from stepflow.aws.log_table import TableCall
from stepflow.aws.topology import LIST_INDEX, LIST_INDEX_PK, LIST_INDEX_SK
from stepflow.runtime.ports import ExecutionRecord
from stepflow.runtime.registry import listing_key

LISTING = "LIST"
"""The sort key of an execution's listing entry."""

GetMany = Callable[[Sequence[str]], list[ExecutionRecord | None]]
"""Reads heads by execution ARN, consistently (:meth:`DynamoDBLog.get_many`)."""


def listing_item(record: ExecutionRecord) -> dict[str, Any] | None:
    """The listing entry of a new execution (None: it is not listed)."""
    listed = listing_key(record.execution_arn, record.state_machine_arn, record.attributes)
    if listed is None:
        return None
    return {
        "pk": {"S": f"EX#{record.execution_arn}"},
        "sk": {"S": LISTING},
        LIST_INDEX_PK: {"S": f"EXL#{listed}"},
        LIST_INDEX_SK: {"S": f"{record.start_date:017.3f}#{record.name}"},
    }


def list_heads(
    call: TableCall,
    get_many: GetMany,
    state_machine_arn: str,
    *,
    status: str | None = None,
    next_token: str | None = None,
    limit: int = 100,
) -> tuple[list[ExecutionRecord], str | None]:
    """A state machine's executions, newest first, and the next page's token.

    An entry whose head is gone (expired, not yet purged) is skipped.
    """
    kwargs: dict[str, Any] = {
        "IndexName": LIST_INDEX,
        "KeyConditionExpression": "#gpk = :gpk",
        "ExpressionAttributeNames": {"#gpk": LIST_INDEX_PK},
        "ExpressionAttributeValues": {":gpk": {"S": f"EXL#{state_machine_arn}"}},
        "ScanIndexForward": False,
        "Limit": limit,
    }
    if next_token:
        kwargs["ExclusiveStartKey"] = _listing_key(next_token, f"EXL#{state_machine_arn}")
    found: list[ExecutionRecord] = []
    while True:
        response = call("query", **kwargs)
        items = response.get("Items", [])
        heads = get_many([item["pk"]["S"][3:] for item in items]) if items else []
        for item, head in zip(items, heads, strict=True):
            if head is None or (status is not None and head.status != status):
                continue
            found.append(head)
            if len(found) == limit:
                more = item is not items[-1] or "LastEvaluatedKey" in response
                return found, _token(item) if more else None
        if "LastEvaluatedKey" not in response:
            return found, None
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _token(item: dict[str, Any]) -> str:
    """The page token that resumes the listing after ``item``."""
    last = {k: item[k]["S"] for k in ("pk", "sk", LIST_INDEX_PK, LIST_INDEX_SK)}
    return base64.urlsafe_b64encode(orjson.dumps(last)).decode()


def _listing_key(token: str, listed: str) -> dict[str, Any]:
    """The start key a token names: a token of another listing (machine, map run) is refused."""
    try:
        keys = orjson.loads(base64.urlsafe_b64decode(token.encode()))
        names = ("pk", "sk", LIST_INDEX_PK, LIST_INDEX_SK)
        start = {name: {"S": str(keys[name])} for name in names}
    except (ValueError, TypeError, KeyError):
        raise ValueError(f"invalid executions token {token!r}") from None
    if start[LIST_INDEX_PK]["S"] != listed:
        raise ValueError(f"executions token {token!r} is another listing's")
    return start
