"""GetExecutionHistory newest first: reverse pages read backwards from their token.

Through the service (``reverseOrder``, ``maxResults``, opaque tokens) on the in-memory
log and on DynamoDBLog on moto, plain and with decisions split across items whose
documents go to S3: reverse paging is exactly the forward history reversed, each
event once, and a reverse page reads no more DynamoDB items than the forward page
of the same events, wherever it is in the history. Histories are written straight
to the log (no state machine runs).
"""

from __future__ import annotations

import base64
import itertools
import math
import os
import random
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stepflow.api import ApiError
from stepflow.runtime import CoordinationLog, ExecutionRecord, InMemoryLog
from stepflow.runtime.registry import InMemoryRegistry

from tests.api.conftest import SM_PREFIX, Api, make_api
from tests.moto_env import offline_aws

pytest.importorskip("moto")
boto3 = pytest.importorskip("boto3")

from stepflow.aws import DynamoDBLog, create_table  # noqa: E402
from stepflow.aws.s3_payloads import S3PayloadStore  # noqa: E402

TABLE = "stepflow-history"
BUCKET = "stepflow-history-payloads"
EXECUTION = "arn:aws:states:eu-west-1:111122223333:execution:Hist:"
KINDS = ("memory", "dynamodb", "dynamodb-split-s3")
_names = itertools.count()


class Counting:
    """A DynamoDB client that adds up the items each Query reads (``ScannedCount``)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.items_read = 0
        self.queries = 0

    def __getattr__(self, operation: str) -> Any:
        call = getattr(self.client, operation)
        if operation != "query":
            return call

        def query(**kwargs: Any) -> Any:
            response = call(**kwargs)
            self.queries += 1
            self.items_read += int(response.get("ScannedCount", 0))
            return response

        return query


@pytest.fixture(scope="module")
def clients() -> Iterator[tuple[Any, Any]]:
    """moto's DynamoDB and S3 (one bucket) for the whole module."""
    with pytest.MonkeyPatch.context() as env, offline_aws(env):
        dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        yield Counting(dynamodb), s3


def make_log(kind: str, clients: tuple[Any, Any]) -> CoordinationLog:
    """The log of ``kind`` in a table of its own (moto's Query scans the whole table);
    split-s3: items of ~2 KB, larger documents in S3 on moto."""
    dynamodb, s3 = clients
    if kind == "memory":
        return InMemoryLog()
    table = f"{TABLE}-{next(_names)}"
    create_table(dynamodb.client, table)
    if kind == "dynamodb":
        return DynamoDBLog(table, client=dynamodb)
    return DynamoDBLog(
        table,
        client=dynamodb,
        compress_above=0,
        payloads=S3PayloadStore(BUCKET, client=s3),
        item_budget=2000,
        transaction_budget=1200,
    )


def noise(size: int) -> str:
    """``size`` characters that do not compress."""
    return base64.b64encode(os.urandom(size * 3 // 4 + 3)).decode()[:size]


def write_history(log: CoordinationLog, decisions: list[list[int]]) -> tuple[str, list[int]]:
    """A new execution whose decisions have events of the given output sizes; its ARN and ids."""
    arn = f"{EXECUTION}h{next(_names)}"
    ids = itertools.count(1)
    for seq, sizes in enumerate(decisions, start=1):
        events = [
            {
                "id": (n := next(ids)),
                "previousEventId": n - 1,
                "timestamp": 1_000.0 + n,
                "type": "PassStateExited",
                "stateExitedEventDetails": {"name": f"S{n}", "output": noise(size)},
            }
            for size in sizes
        ]
        record = ExecutionRecord(
            arn, SM_PREFIX + "Hist", arn.rsplit(":", 1)[1], {}, "RUNNING", seq, {"format": 1}
        )
        if seq == 1:
            log.create(record, events)
        else:
            log.commit(record, seq - 1, events)
    return arn, list(range(1, next(ids)))


def pages(api: Api, arn: str, limit: int, *, reverse: bool) -> list[list[dict[str, Any]]]:
    """Every page of the history, following the tokens."""
    found, token = [], None
    while True:
        params: dict[str, Any] = {"executionArn": arn, "maxResults": limit, "reverseOrder": reverse}
        page = api("GetExecutionHistory", **params, **({"nextToken": token} if token else {}))
        found.append(page["events"])
        token = page.get("nextToken")
        if token is None:
            return found


def flat(found: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [event for page in found for event in page]


def invalid_token(api: Api, **params: Any) -> bool:
    try:
        api("GetExecutionHistory", **params)
    except ApiError as exc:
        return exc.code == "InvalidToken"
    return False


decisions_strategy = st.lists(
    st.lists(st.sampled_from([0, 10, 700, 1500]), min_size=1, max_size=10), min_size=1, max_size=6
)


@pytest.mark.parametrize("kind", KINDS)
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    decisions=decisions_strategy,
    limit=st.one_of(st.integers(1, 12), st.integers(1, 1000)),
)
def test_reverse_pages_are_the_forward_history_reversed(
    clients: tuple[Any, Any], kind: str, decisions: list[list[int]], limit: int
) -> None:
    # GIVEN a history written in decisions of any sizes (split and offloaded on split-s3)
    api = make_api(make_log(kind, clients), InMemoryRegistry())
    arn, ids = write_history(api.log, decisions)
    # WHEN it is paged both ways with the same maxResults
    forward, backward = pages(api, arn, limit, reverse=False), pages(api, arn, limit, reverse=True)
    # THEN newest first is exactly oldest first reversed: each event once, full pages but
    # the last, no empty page, as many pages as forward
    assert [e["id"] for e in flat(forward)] == ids
    assert flat(backward) == flat(forward)[::-1]
    assert len(backward) == len(forward) == max(1, math.ceil(len(ids) / limit))
    assert all(len(page) == limit for page in backward[:-1]) and backward[-1]


@pytest.mark.parametrize("kind", KINDS)
def test_reverse_paging_ignores_events_appended_meanwhile(
    clients: tuple[Any, Any], kind: str
) -> None:
    # GIVEN a reverse paging half done
    api = make_api(make_log(kind, clients), InMemoryRegistry())
    arn, ids = write_history(api.log, [[10] * 5, [10] * 4])
    first = api("GetExecutionHistory", executionArn=arn, maxResults=4, reverseOrder=True)
    # WHEN the execution commits more events before the next page is asked for
    record = api.log.get(arn)
    assert record is not None
    later = [{"id": 10 + i, "previousEventId": 9 + i, "type": "PassStateEntered"} for i in range(3)]
    api.log.commit(replace(record, seq=3), 2, later)
    # THEN the token goes on below where it stood: the rest of the old history, once
    rest: list[dict[str, Any]] = []
    token = first["nextToken"]
    while token:
        page = api(
            "GetExecutionHistory",
            executionArn=arn,
            maxResults=4,
            reverseOrder=True,
            nextToken=token,
        )
        rest.extend(page["events"])
        token = page.get("nextToken")
    assert [e["id"] for e in first["events"] + rest] == ids[::-1]


@pytest.mark.parametrize("kind", KINDS)
def test_a_token_of_another_direction_or_execution_or_forged_is_invalid(
    clients: tuple[Any, Any], kind: str
) -> None:
    # GIVEN two executions and tokens of each direction
    api = make_api(make_log(kind, clients), InMemoryRegistry())
    arn, _ = write_history(api.log, [[10] * 3, [10] * 3])
    other, _ = write_history(api.log, [[10] * 3, [10] * 3])
    forward = api("GetExecutionHistory", executionArn=arn, maxResults=2)["nextToken"]
    reverse = api("GetExecutionHistory", executionArn=arn, maxResults=2, reverseOrder=True)[
        "nextToken"
    ]
    # THEN a token read the other way, or for another execution, is refused
    assert invalid_token(api, executionArn=arn, reverseOrder=True, nextToken=forward)
    assert invalid_token(api, executionArn=arn, reverseOrder=False, nextToken=reverse)
    assert invalid_token(api, executionArn=other, reverseOrder=True, nextToken=reverse)
    assert invalid_token(api, executionArn=other, nextToken=forward)
    # AND so is a token rewritten by hand: its inner position swapped for the other
    # direction's, or pointing where this log cannot have stopped
    tag, _, inner = base64.urlsafe_b64decode(reverse).decode().partition("|")
    owner = inner.partition("/")[0]
    for forged in ("5:0", "5", "r", "r-1:0", "rjunk", "r99999:1", "r1:99", "r99999", "r0", ""):
        token = base64.urlsafe_b64encode(f"hr|{owner}/{forged}".encode()).decode()
        assert invalid_token(api, executionArn=arn, reverseOrder=True, nextToken=token), forged
    assert tag == "hr"


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize(("limit", "size"), [(1, 40), (7, 105), (50, 200)])
def test_a_reverse_page_reads_no_more_items_than_the_forward_page_of_its_events(
    clients: tuple[Any, Any], limit: int, size: int, seed: int
) -> None:
    # GIVEN events in decisions of 1 to 9 events (one item each), on DynamoDB
    dynamodb = clients[0]
    api = make_api(make_log("dynamodb", clients), InMemoryRegistry())
    rng = random.Random(seed * 1000 + limit)
    decisions, total = [], 0
    while total < size:
        size_ = min(rng.randint(1, 9), size - total)
        decisions.append([10] * size_)
        total += size_
    arn, ids = write_history(api.log, decisions)

    def reads(reverse: bool) -> list[tuple[int, list[int]]]:
        """Items read by each page, and the page's event ids."""
        found, token = [], None
        while True:
            before = dynamodb.items_read
            page = api(
                "GetExecutionHistory",
                executionArn=arn,
                maxResults=limit,
                reverseOrder=reverse,
                **({"nextToken": token} if token else {}),
            )
            found.append((dynamodb.items_read - before, [e["id"] for e in page["events"]]))
            token = page.get("nextToken")
            if token is None:
                return found

    # WHEN it is paged both ways
    forward, backward = reads(False), reads(True)
    # THEN page j newest first holds the events of forward page n-1-j, reversed, and
    # reads no more items than it, the deepest page as much as the first
    assert len(forward) == len(backward) == len(ids) // limit
    for (items, events), (forward_items, forward_events) in zip(
        backward, reversed(forward), strict=True
    ):
        assert events == forward_events[::-1]
        assert items <= forward_items, (events[0], items, forward_items)
    assert max(items for items, _ in backward) <= max(items for items, _ in forward)
