"""Listing a state machine's executions, newest first, through the log's listing index.

Top-level heads carry ``LIST_INDEX_PK = EXL#<unqualified state machine arn>`` and
``LIST_INDEX_SK = <start date>#<name>`` (see :mod:`stepflow.aws.topology`); the
page token is the last head's index key, base64-encoded JSON.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from stepflow.aws.log_table import TableCall
from stepflow.aws.topology import LIST_INDEX, LIST_INDEX_PK, LIST_INDEX_SK


def list_heads(
    call: TableCall,
    state_machine_arn: str,
    *,
    status: str | None = None,
    next_token: str | None = None,
    limit: int = 100,
) -> tuple[list[dict[str, Any]], str | None]:
    """Head items of a state machine's executions, newest first, and the next page's token."""
    kwargs: dict[str, Any] = {
        "IndexName": LIST_INDEX,
        "KeyConditionExpression": "#gpk = :gpk",
        "ExpressionAttributeNames": {"#gpk": LIST_INDEX_PK},
        "ExpressionAttributeValues": {":gpk": {"S": f"EXL#{state_machine_arn}"}},
        "ScanIndexForward": False,
        "Limit": limit,
    }
    if status is not None:
        kwargs["FilterExpression"] = "#st = :st"
        kwargs["ExpressionAttributeNames"]["#st"] = "status"
        kwargs["ExpressionAttributeValues"][":st"] = {"S": status}
    if next_token:
        kwargs["ExclusiveStartKey"] = _listing_key(next_token, f"EXL#{state_machine_arn}")
    found: list[dict[str, Any]] = []
    while True:
        response = call("query", **kwargs)
        items, room = response.get("Items", []), limit - len(found)
        found.extend(items[:room])
        if len(items) <= room and "LastEvaluatedKey" not in response:
            return found, None
        if len(found) == limit:
            break
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    last = {k: found[-1][k]["S"] for k in ("pk", "sk", LIST_INDEX_PK, LIST_INDEX_SK)}
    token = base64.urlsafe_b64encode(orjson.dumps(last)).decode()
    return found, token


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
