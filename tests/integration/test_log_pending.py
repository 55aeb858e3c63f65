"""A commit's events carried by the head (stepflow.aws.log_pending), on DynamoDBLog on moto.

A commit whose events fit one inline event item is one conditional ``UpdateItem``; the
next commit with events copies them to their ``EV#`` item first. These tests count the
requests, kill the writer between the two writes and after them, race two writers and
stale caches, and compare every way of reading the history with the events committed:
each event exactly once, in order.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from stepflow.runtime import ConflictError, ExecutionRecord, Message
from stepflow.runtime.leases import LeaseFence, TaskLease

from tests.moto_env import offline_aws

pytest.importorskip("moto")
boto3 = pytest.importorskip("boto3")

from stepflow.aws import DynamoDBLog, create_table  # noqa: E402
from stepflow.aws.dynamodb_log import LogIntegrityError  # noqa: E402
from stepflow.aws.log_items import item_size  # noqa: E402
from stepflow.runtime.payloads import InMemoryPayloadStore  # noqa: E402

TABLE = "stepflow-pending"
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:Pending"
ARN = "arn:aws:states:us-east-1:123456789012:execution:Pending:e1"
HEAD_KEY = {"pk": {"S": f"EX#{ARN}"}, "sk": {"S": "HEAD"}}


class Crash(Exception):
    """The writer's process died."""


class Client:
    """moto's DynamoDB, counting writes by operation, able to die before or after one."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[str] = []
        self.die: dict[tuple[str, str], int] = {}
        """(operation, "before"|"after") -> how many more calls of it succeed first."""

    def __getattr__(self, operation: str) -> Any:
        call = getattr(self.client, operation)

        def counted(**kwargs: Any) -> Any:
            self._maybe_die(operation, "before")
            self.calls.append(operation)
            response = call(**kwargs)
            self._maybe_die(operation, "after")
            return response

        return counted

    def _maybe_die(self, operation: str, when: str) -> None:
        left = self.die.get((operation, when))
        if left is None:
            return
        if left == 0:
            del self.die[(operation, when)]
            raise Crash(f"died {when} {operation}")
        self.die[(operation, when)] = left - 1

    def writes(self) -> list[str]:
        return [c for c in self.calls if c in ("put_item", "update_item", "transact_write_items")]


@pytest.fixture(scope="module")
def aws() -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as env, offline_aws(env):
        yield boto3.client("dynamodb", region_name="us-east-1")


@pytest.fixture
def raw(aws: Any) -> Iterator[Any]:
    create_table(aws, TABLE)
    yield aws
    aws.delete_table(TableName=TABLE)


def new_log(raw: Any, **options: Any) -> tuple[DynamoDBLog, Client]:
    client = Client(raw)
    return DynamoDBLog(TABLE, client=client, **options), client


def record(seq: int, **changes: Any) -> ExecutionRecord:
    base = ExecutionRecord(
        execution_arn=ARN,
        state_machine_arn=SM,
        name="e1",
        input={"order": "ü"},
        status="RUNNING",
        seq=seq,
        state={"format": 1, "step": seq},
        outbox=(Message(ARN, f"{ARN}#{seq}#0", "event", {"type": "TimerFired"}, 5.0),),
        start_date=1_000.0,
    )
    return replace(base, **changes)


def events(first: int, count: int, size: int = 10) -> list[dict[str, Any]]:
    rng = random.Random(first)
    return [
        {
            "id": first + i,
            "previousEventId": first + i - 1,
            "type": "PassStateExited",
            "timestamp": 1_000.5 + first + i,
            "stateExitedEventDetails": {
                "name": f"S{first + i}",
                "output": "".join(rng.choice("abcdefghij0123456789") for _ in range(size)),
            },
        }
        for i in range(count)
    ]


def paged(log: DynamoDBLog, limit: int, *, reverse: bool) -> list[dict[str, Any]]:
    """The whole history, a page of ``limit`` at a time (``reverse``: reversed back)."""
    found, token = [], None
    while True:
        page = log.history(ARN, next_token=token, limit=limit, reverse=reverse)
        found.extend(page.events)
        if page.next_token is None:
            return found[::-1] if reverse else found
        token = page.next_token


def assert_history(log: DynamoDBLog, expected: list[dict[str, Any]]) -> None:
    """Forward and backward at three page sizes, and from each event id: ``expected``."""
    for limit in (1, 2, 3, 1000):
        assert paged(log, limit, reverse=False) == expected
        assert paged(log, limit, reverse=True) == expected
    for first in range(1, len(expected) + 1):
        assert log.history_from(ARN, first, limit=10_000).events == expected[first - 1 :]


def head(raw: Any) -> dict[str, Any]:
    item: dict[str, Any] = raw.get_item(TableName=TABLE, Key=HEAD_KEY, ConsistentRead=True)["Item"]
    return item


def event_items(raw: Any) -> dict[str, dict[str, Any]]:
    items = raw.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :ev)",
        ExpressionAttributeValues={":pk": {"S": f"EX#{ARN}"}, ":ev": {"S": "EV#"}},
    )["Items"]
    return {item["sk"]["S"]: item for item in items}


# -- counting ----------------------------------------------------------------------


def test_a_commit_is_one_update_and_the_next_copies_its_events_once(raw: Any) -> None:
    log, client = new_log(raw)
    # WHEN an execution is created with two small events
    log.create(record(1), events(1, 2))
    # THEN its head carries them: two reads of one item (for an expired execution's
    # leftovers: tests/integration/test_create_carried.py), the listing entry's put and
    # the head's; no transaction
    assert client.calls == ["query", "query", "put_item", "put_item"]
    assert head(raw)["ev_sk"] == {"S": "EV#000000000001"}
    assert event_items(raw) == {}
    assert_history(log, events(1, 2))
    # WHEN a commit of three small events
    client.calls.clear()
    log.commit(record(2), 1, events(3, 3))
    # THEN the create's events are copied, then exactly one write commits: the head's
    # UpdateItem, carrying the new events; no EV item for them yet
    assert client.calls == ["update_item", "update_item"]
    assert head(raw)["ev_sk"] == {"S": "EV#000000000003"}
    assert sorted(event_items(raw)) == ["EV#000000000001"]
    # WHEN the next commit (from what this log read: no extra read)
    client.calls.clear()
    log.commit(record(3), 2, events(6, 1))
    # THEN one put copies the pending events (marked flushed), then one update
    assert client.calls == ["update_item", "update_item"]
    copied = event_items(raw)["EV#000000000003"]
    assert copied["flushed"] == {"BOOL": True} and copied["seq"] == {"N": "2"}
    assert head(raw)["ev_sk"] == {"S": "EV#000000000006"}
    assert_history(log, events(1, 2) + events(3, 3) + events(6, 1))


def test_a_fresh_log_reads_the_head_once_before_copying(raw: Any) -> None:
    DynamoDBLog(TABLE, client=raw).create(record(1), events(1, 1))
    DynamoDBLog(TABLE, client=raw).commit(record(2), 1, events(2, 2))
    # WHEN another process (nothing cached) commits from seq 2
    log, client = new_log(raw)
    log.commit(record(3), 2, events(4, 1))
    # THEN one read, one copy, one update
    assert client.calls == ["get_item", "update_item", "update_item"]
    assert_history(log, events(1, 1) + events(2, 2) + events(4, 1))


def test_commits_without_events_leave_the_pending_events_in_place(raw: Any) -> None:
    log, client = new_log(raw)
    log.create(record(1), events(1, 1))
    log.commit(record(2), 1, events(2, 2))
    pending = {k: v for k, v in head(raw).items() if k.startswith("ev")}
    # WHEN the outbox is cleared, kept, and an eventless commit moves the seq on
    log.clear_outbox(ARN, 2)
    log.keep_outbox(record(2), [])
    log.commit(record(3), 2, [])
    # THEN the head still carries them and nothing was copied
    assert {k: v for k, v in head(raw).items() if k.startswith("ev")} == pending
    assert sorted(event_items(raw)) == ["EV#000000000001"]
    # AND a commit with events from the new seq copies them first, once
    client.calls.clear()
    log.commit(record(4), 3, events(4, 1))
    assert client.writes() == ["update_item", "update_item"]
    assert_history(log, events(1, 1) + events(2, 2) + events(4, 1))
    # AND so does a fresh process, which knows nothing of the eventless commit
    other, other_client = new_log(raw)
    other.commit(record(5), 4, events(5, 1))
    assert other_client.calls == ["get_item", "update_item", "update_item"]
    assert_history(other, events(1, 1) + events(2, 2) + events(4, 1) + events(5, 1))


def test_large_events_go_the_transaction_way_after_the_copy(raw: Any) -> None:
    log, client = new_log(raw, item_budget=2_000, payloads=InMemoryPayloadStore())
    log.create(record(1), events(1, 1))
    log.commit(record(2), 1, events(2, 1))
    # WHEN a decision whose events need several items
    client.calls.clear()
    log.commit(record(3), 2, events(3, 12, size=400))
    # THEN the pending events are copied, the new ones written by a transaction
    assert client.writes() == ["update_item", "transact_write_items"]
    assert not {k for k in head(raw) if k.startswith("ev")}
    # AND the next small commit copies nothing
    client.calls.clear()
    log.commit(record(4), 3, events(15, 1))
    assert client.writes() == ["update_item"]
    assert_history(log, events(1, 1) + events(2, 1) + events(3, 12, size=400) + events(15, 1))


def test_a_fenced_commit_carries_its_events_in_the_same_transaction(raw: Any) -> None:
    log, client = new_log(raw)
    log.create(record(1), events(1, 1))
    lease = TaskLease(ARN, "t1", version=1, delivery=1, owner="w", until=99.0)
    log.put_lease(lease)
    client.calls.clear()
    fence = LeaseFence(current=lease, new=replace(lease, version=2, released=True))
    log.commit(record(2), 1, events(2, 2), fence=fence)
    # THEN the create's pending events are copied, then one transaction
    assert client.writes() == ["update_item", "transact_write_items"]
    assert head(raw)["ev_sk"] == {"S": "EV#000000000002"}
    stored = log.lease(ARN, "t1")
    assert stored is not None and stored.version == 2
    assert_history(log, events(1, 1) + events(2, 2))


# -- crashes -----------------------------------------------------------------------


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_writer_dying_around_its_head_update_loses_nothing(raw: Any, when: str) -> None:
    log, _ = new_log(raw)
    log.create(record(1), events(1, 1))
    log.commit(record(2), 1, events(2, 3))
    # WHEN a writer copies the pending events and dies before (or right after) its update
    dying, client = new_log(raw)
    client.die[("update_item", when)] = 1  # the copy is the first update
    with pytest.raises(Crash):
        dying.commit(record(3), 2, events(5, 1))
    # (before: the copy and the head's pending events are both there, read once, a page of
    # two ending inside them either way)
    committed = events(1, 1) + events(2, 3) + ([] if when == "before" else events(5, 1))
    # THEN every reader sees each committed event once (a copy and the head's: once)
    reader, _ = new_log(raw)
    assert_history(reader, committed)
    # AND a new writer from the head as it is commits and keeps everything
    retry, _ = new_log(raw)
    current = retry.get(ARN)
    assert current is not None
    retry.commit(record(current.seq + 1), current.seq, events(len(committed) + 1, 1))
    assert_history(retry, [*committed, *events(len(committed) + 1, 1)])


def test_a_writer_dying_after_the_copy_leaves_its_race_to_the_next(raw: Any) -> None:
    log, _ = new_log(raw)
    log.create(record(1), events(1, 1))
    log.commit(record(2), 1, events(2, 1))
    dying, client = new_log(raw)
    client.die[("update_item", "after")] = 0
    with pytest.raises(Crash):
        dying.commit(record(3), 2, events(3, 1))
    # THEN the copy is there, the head still carries the same events: read once
    assert "EV#000000000002" in event_items(raw) and head(raw)["ev_sk"]["S"] == "EV#000000000002"
    assert_history(new_log(raw)[0], events(1, 1) + events(2, 1))
    # AND the next writer copies again (same content, allowed) and commits
    log.commit(record(3), 2, events(3, 2))
    assert_history(log, events(1, 1) + events(2, 1) + events(3, 2))


# -- races and stale knowledge -------------------------------------------------------


def test_two_writers_from_one_seq_one_wins_and_nothing_is_doubled(raw: Any) -> None:
    a, _ = new_log(raw)
    b, b_client = new_log(raw)
    a.create(record(1), events(1, 1))
    a.commit(record(2), 1, events(2, 1))
    assert a.get(ARN) == b.get(ARN)  # both read seq 2
    a.commit(record(3, state={"by": "a"}), 2, events(3, 2))
    # WHEN b commits from the same seq: it copies (harmlessly) and loses the update
    b_client.calls.clear()
    with pytest.raises(ConflictError):
        b.commit(record(3, state={"by": "b"}), 2, events(3, 1, size=50))
    assert b_client.writes() == ["update_item", "update_item"]
    # THEN a's commit stands, its events once
    got = b.get(ARN)
    assert got is not None and got.state == {"by": "a"}
    assert_history(b, events(1, 1) + events(2, 1) + events(3, 2))


def test_a_stale_reader_conflicts_without_writing_over_anything(raw: Any) -> None:
    a, _ = new_log(raw)
    stale, client = new_log(raw)
    a.create(record(1), events(1, 1))
    a.commit(record(2), 1, events(2, 1))
    assert stale.get(ARN) is not None  # remembers seq 2's pending events
    a.commit(record(3), 2, events(3, 1))
    a.commit(record(4), 3, events(4, 1))
    client.calls.clear()
    with pytest.raises(ConflictError):
        stale.commit(record(3), 2, events(3, 1, size=99))
    assert_history(a, events(1, 1) + events(2, 1) + events(3, 1) + events(4, 1))
    # AND one that never read the head conflicts after one read, writing nothing
    fresh, fresh_client = new_log(raw)
    with pytest.raises(ConflictError):
        fresh.commit(record(3), 2, events(3, 1, size=99))
    assert fresh_client.writes() == []


@pytest.mark.parametrize("new_start", [1_000.0, 9_000.5], ids=["same-start", "later-start"])
def test_a_cached_head_of_an_earlier_execution_of_the_arn_is_never_copied(
    raw: Any, new_start: float
) -> None:
    a, _ = new_log(raw)
    b, _ = new_log(raw)
    a.create(record(1), events(1, 2))
    a.commit(record(2), 1, events(3, 2))
    assert b.get(ARN) is not None  # b remembers seq 2 carrying the old events 3-4
    # GIVEN the execution expired and the ARN was started again (by a), reaching seq 2
    raw.delete_item(TableName=TABLE, Key=HEAD_KEY)
    a.purge(ARN)
    a.create(record(1, start_date=new_start), events(1, 2))
    new = [{**e, "stateExitedEventDetails": {"name": "NEW", "output": "n"}} for e in events(3, 2)]
    a.commit(record(2, start_date=new_start), 1, new)
    # WHEN b takes the new execution's next step from seq 2
    try:
        b.commit(record(3, start_date=new_start), 2, events(5, 1))
    except ConflictError:  # what b copied was not what the head held: retried after a read
        current = b.get(ARN)
        assert current is not None and current.seq == 2
        b.commit(record(3, start_date=new_start), 2, events(5, 1))
    # THEN the new execution's events 3-4 are its own, once, and none of the old ones
    assert_history(b, events(1, 2) + new + events(5, 1))


def test_a_copy_out_by_another_writer_at_the_same_seq_does_not_refuse_a_keep(raw: Any) -> None:
    store = InMemoryPayloadStore()
    a, a_client = new_log(raw, item_budget=3_000, payloads=store)
    b, _ = new_log(raw, item_budget=3_000, payloads=store)
    a.create(record(1), events(1, 1))
    a.commit(record(2), 1, events(2, 2, size=400))
    assert a.get(ARN) is not None  # a remembers seq 2 carrying events 2-3
    # GIVEN b keeps the outbox at seq 2 with a head so large that the events are copied out
    rng = random.Random(7)
    grown = record(2, input={"noise": "".join(rng.choice("abcdefgh") for _ in range(4_500))})
    b.keep_outbox(grown, [])
    assert "ev_sk" not in head(raw)
    # WHEN a keeps its outbox at the same seq THEN it is kept: one copy, one update
    kept = Message(ARN, f"{ARN}#2#9", "event", {"type": "TimerFired"}, 5.0)
    a_client.calls.clear()
    a.keep_outbox(grown, [kept])
    assert a_client.calls == ["update_item", "update_item"]
    current = a.get(ARN)
    assert current is not None and current.outbox == (kept,)
    assert_history(a, events(1, 1) + events(2, 2, size=400))


def test_a_foreign_item_at_the_pending_key_stops_the_next_commit(raw: Any) -> None:
    log, _ = new_log(raw)
    log.create(record(1), events(1, 1))
    log.commit(record(2), 1, events(2, 1))
    # GIVEN a leftover item of another commit where the pending events belong
    raw.put_item(
        TableName=TABLE,
        Item={"pk": {"S": f"EX#{ARN}"}, "sk": {"S": "EV#000000000002"}, "seq": {"N": "77"}},
    )
    before = head(raw)
    # WHEN the next commit THEN an integrity error, and the head is as it was
    with pytest.raises(LogIntegrityError, match="EV#000000000002"):
        log.commit(record(3), 2, events(3, 1))
    assert head(raw) == before


def test_events_larger_than_the_head_go_the_transaction_way(raw: Any) -> None:
    log, client = new_log(raw)
    log.create(record(1), events(1, 1))
    # WHEN a commit of 6 KB of incompressible events (one inline item) beside a small head
    client.calls.clear()
    log.commit(record(2), 1, events(2, 3, size=2_000))
    # THEN (after the copy of the create's pending events) a transaction: carried, the
    # head's next writes would bill them again
    assert client.writes() == ["update_item", "transact_write_items"]
    assert not {k for k in head(raw) if k.startswith("ev")}
    assert_history(log, events(1, 1) + events(2, 3, size=2_000))


def test_an_eventless_commit_never_makes_the_head_too_large(raw: Any) -> None:
    store = InMemoryPayloadStore()
    log, client = new_log(raw, item_budget=3_000, payloads=store)
    log.create(record(1), events(1, 1))
    log.commit(record(2), 1, events(2, 2, size=400))
    assert "ev_sk" in head(raw)
    # WHEN an eventless commit grows the head so that with the pending events it would
    # pass the item budget (on DynamoDB, the 400 KB limit: every retry rejected)
    rng = random.Random(7)
    noise = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(3_500))
    grown = record(3, input={"noise": noise})  # a head of about 2.6 KB, events of 0.6 KB
    client.calls.clear()
    log.commit(grown, 2, [])
    # THEN the pending events are copied out first and the head no longer carries them
    assert client.writes() == ["update_item", "update_item"]
    stored = head(raw)
    assert "ev_sk" not in stored and 2_000 < item_size(stored) <= 3_000
    assert log.get(ARN) == grown
    assert_history(log, events(1, 1) + events(2, 2, size=400))
    # AND a small eventless commit after a small commit leaves them in place, one write
    log.commit(record(4), 3, events(4, 1))
    client.calls.clear()
    log.commit(record(5), 4, [])  # (the head no longer holds the noise)
    assert client.writes() == ["update_item"] and "ev_sk" in head(raw)
    assert_history(log, events(1, 1) + events(2, 2, size=400) + events(4, 1))


def test_a_commit_with_events_must_move_the_seq(raw: Any) -> None:
    log, client = new_log(raw)
    log.create(record(1), events(1, 1))
    client.calls.clear()
    with pytest.raises(ValueError, match="seq"):
        log.commit(record(1), 1, events(2, 1))
    assert client.writes() == []


# -- a random campaign -----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_random_commits_crashes_and_readers_agree_with_what_was_committed(
    raw: Any, seed: int
) -> None:
    rng = random.Random(seed)
    store = InMemoryPayloadStore()
    options = {"item_budget": 3_000, "payloads": store}
    log, _ = new_log(raw, **options)
    log.create(record(1), events(1, 1))
    committed, seq, next_id = events(1, 1), 1, 2
    for _ in range(14):
        writer, client = new_log(raw, **options) if rng.random() < 0.3 else (log, None)
        count, size = rng.randint(0, 4), rng.choice([5, 5, 5, 300, 900])
        batch = events(next_id, count, size)
        if client is not None and count and rng.random() < 0.3:
            # the copy and the head's update are both updates: die at the first or second
            client.die[("update_item", rng.choice(["before", "after"]))] = rng.choice([0, 1])
        if rng.random() < 0.2:
            log.clear_outbox(ARN, seq)
        try:
            writer.commit(record(seq + 1), seq, batch)
        except Crash:
            current = new_log(raw, **options)[0].get(ARN)
            assert current is not None
            if current.seq == seq:
                continue  # died before its update: nothing committed
        seq, next_id = seq + 1, next_id + count
        committed += batch
        assert_history(new_log(raw, **options)[0], committed)
