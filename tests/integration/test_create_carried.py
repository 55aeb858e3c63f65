"""A new execution's head carrying its first events (stepflow.aws.log_lifecycle), on moto.

When the first events fit one inline event item and carrying them pays, a create is a
read of the partition's last item, the listing entry's put and the head's put, not a
transaction of three items. A transaction's event item found an expired execution's
leftovers by its condition; the carried create finds them by that read and purges them.
These tests count the requests, leave leftovers of every shape (a whole expired history,
one purged halfway, a live execution's), crash the creator between its writes, race
creators, and read every history back in full (tests/integration/test_log_pending.py's
``assert_history``: forward and backward at four page sizes, and from every event id).
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest
from stepflow.runtime import ExecutionAlreadyExistsError

from tests.integration.test_log_pending import (
    ARN,
    HEAD_KEY,
    SM,
    TABLE,
    Crash,
    assert_history,
    aws,  # noqa: F401  (a fixture)
    event_items,
    events,
    head,
    new_log,
    record,
)
from tests.integration.test_log_pending import raw as raw  # a fixture

pytest.importorskip("moto")

from stepflow.aws import DynamoDBLog
from stepflow.aws.log_pending import worth_carrying_at_create

LATER = 5_000_000.0
"""The start date of the execution created again under the ARN (the first's is 1,000)."""


def partition(raw: Any) -> list[str]:
    """The sort keys of every item of the execution's partition."""
    items = raw.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": HEAD_KEY["pk"]},
        ConsistentRead=True,
    )["Items"]
    return [item["sk"]["S"] for item in items]


def entry_start(raw: Any) -> float:
    """The start date the execution's listing entry sorts it by."""
    key = {**HEAD_KEY, "sk": {"S": "LIST"}}
    item = raw.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"]
    return float(item["gsi1sk"]["S"].split("#", 1)[0])


def listed(log: DynamoDBLog) -> list[tuple[str, float]]:
    records, _ = log.list_executions(SM, limit=100)
    return [(r.execution_arn, r.start_date) for r in records]


def expired_execution(raw: Any, commits: int) -> None:
    """An execution with ``commits`` commits after its create, whose head TTL deleted."""
    log, _ = new_log(raw)
    log.create(record(1), events(1, 2))
    for n in range(commits):
        log.commit(record(2 + n), 1 + n, events(3 + 3 * n, 3))
    raw.put_item(
        TableName=TABLE, Item={**HEAD_KEY, "sk": {"S": "TK#old-task"}, "version": {"N": "1"}}
    )
    raw.delete_item(TableName=TABLE, Key=HEAD_KEY)


def again(seq: int = 1) -> Any:
    """The record of the execution started again under the ARN."""
    return record(seq, start_date=LATER, input={"again": True})


# -- counting ----------------------------------------------------------------------


def test_a_create_is_a_read_and_two_puts_and_the_first_commit_copies_once(raw: Any) -> None:
    log, client = new_log(raw)
    log.create(record(1), events(1, 2))
    # (two reads: neither an event item nor a lease record was left under the ARN)
    assert client.calls == ["query", "query", "put_item", "put_item"]
    assert partition(raw) == ["HEAD", "LIST"]
    assert head(raw)["ev_seq"] == {"N": "1"}
    assert listed(log) == [(ARN, 1_000.0)]
    # WHEN another process (nothing cached) makes the first commit
    other, other_client = new_log(raw)
    other.commit(record(2), 1, events(3, 1))
    # THEN it reads the head once, copies the create's events once, and updates the head
    assert other_client.calls == ["get_item", "update_item", "update_item"]
    assert partition(raw) == ["EV#000000000001", "HEAD", "LIST"]
    assert_history(other, events(1, 2) + events(3, 1))
    assert_history(log, events(1, 2) + events(3, 1))


def test_the_order_workloads_create_is_carried_and_a_larger_head_is_not() -> None:
    pk = {"pk": {"S": "EX#" + ARN}}
    head_item = {**pk, "sk": {"S": "HEAD"}, "doc": {"S": "h" * 600}}
    chunk = {**pk, "sk": {"S": "EV#000000000001"}, "seq": {"N": "1"}, "events": {"S": "e" * 250}}
    carrying = {"ev_sk": chunk["sk"], "ev_seq": chunk["seq"], "ev": chunk["events"]}
    listing = {**pk, "sk": {"S": "LIST"}, "gsi1pk": {"S": "EXL#" + SM}}
    # 0.9 KB with its events: 3 units (4 with the index) against a transaction's 5 (8)
    assert worth_carrying_at_create(head_item, chunk, carrying, 400_000, listing)
    assert worth_carrying_at_create(head_item, chunk, carrying, 400_000, None)
    # a head of 0.95 KB that its events take past 1 KB: a tie at best, so the transaction
    bigger = {**head_item, "doc": {"S": "h" * 900}}
    assert not worth_carrying_at_create(bigger, chunk, carrying, 400_000, listing)
    # a head of 1.9 KB that its events take past 2 KB: carried (9 units against 10)
    largest = {**head_item, "doc": {"S": "h" * 1_850}}
    assert worth_carrying_at_create(largest, chunk, carrying, 400_000, listing)
    assert not worth_carrying_at_create(largest, chunk, carrying, 400_000, None)  # 8 and 8
    # over the item budget: never
    assert not worth_carrying_at_create(head_item, chunk, carrying, 900, listing)


def test_a_larger_first_decision_is_created_by_the_transaction_as_before(raw: Any) -> None:
    log, client = new_log(raw)
    log.create(record(1), events(1, 3, size=2_000))
    assert client.writes() == ["transact_write_items"]
    assert "query" not in client.calls
    assert not {k for k in head(raw) if k.startswith("ev")}
    assert_history(log, events(1, 3, size=2_000))


# -- leftovers ---------------------------------------------------------------------


@pytest.mark.parametrize("commits", [0, 1, 4])
def test_an_expired_executions_leftovers_are_purged_before_the_head_is_put(
    raw: Any, commits: int
) -> None:
    expired_execution(raw, commits)
    assert "HEAD" not in partition(raw) and "LIST" in partition(raw)
    # WHEN the ARN is started again
    log, client = new_log(raw)
    log.create(again(), events(1, 1))
    # THEN every leftover is gone: the history is the new execution's alone, it is listed
    # once with its own start date, and its first commit copies its first events
    assert partition(raw) == ["HEAD", "LIST"]
    assert client.writes()[-2:] == ["put_item", "put_item"]
    assert_history(log, events(1, 1))
    assert listed(log) == [(ARN, LATER)]
    assert entry_start(raw) == LATER
    log.commit(again(2), 1, events(2, 4))
    log.commit(again(3), 2, events(6, 1))
    assert_history(log, events(1, 1) + events(2, 4) + events(6, 1))


def test_leftovers_of_a_purge_stopped_halfway_are_found_too(raw: Any) -> None:
    expired_execution(raw, 4)
    # a sweeper that died after deleting the oldest items (the purge goes in key order)
    for sk in ("EV#000000000001", "EV#000000000003"):
        raw.delete_item(TableName=TABLE, Key={**HEAD_KEY, "sk": {"S": sk}})
    log, _ = new_log(raw)
    log.create(again(), events(1, 1))
    assert partition(raw) == ["HEAD", "LIST"]
    log.commit(again(2), 1, events(2, 12))  # over the old EV#000000000009 and 12
    assert_history(log, events(1, 1) + events(2, 12))


def test_a_live_execution_is_never_purged_by_a_create_of_its_arn(raw: Any) -> None:
    log, _ = new_log(raw)
    log.create(record(1), events(1, 2))
    log.commit(record(2), 1, events(3, 3))
    log.commit(record(3), 2, events(6, 1))
    before = {sk: item for sk, item in event_items(raw).items()}
    stored_head = head(raw)
    # WHEN another create of the ARN
    other, client = new_log(raw)
    with pytest.raises(ExecutionAlreadyExistsError):
        other.create(again(), events(1, 1))
    # THEN nothing was deleted or replaced: no purge was tried (one read found the head,
    # and the create went the transaction's way, refused by its condition on the head)
    assert client.calls == ["query", "transact_write_items"]
    assert event_items(raw) == before and head(raw) == stored_head
    assert_history(log, events(1, 2) + events(3, 3) + events(6, 1))
    assert listed(log) == [(ARN, 1_000.0)]


# -- crashes and races -------------------------------------------------------------


@pytest.mark.parametrize(
    "die",
    [("put_item", "before", 0), ("put_item", "after", 0), ("put_item", "before", 1)],
    ids=["before-the-listing", "after-the-listing", "before-the-head"],
)
def test_a_creator_dying_between_its_writes_loses_nothing_on_retry(
    raw: Any, die: tuple[str, str, int]
) -> None:
    expired_execution(raw, 2)
    dying, client = new_log(raw)
    client.die[(die[0], die[1])] = die[2]
    with pytest.raises(Crash):
        dying.create(again(), events(1, 2))
    assert "HEAD" not in partition(raw)
    # WHEN the caller retries (StartExecution with the same name)
    log, _ = new_log(raw)
    log.create(again(), events(1, 2))
    # THEN one execution: its own history, listed once with its own start date
    assert partition(raw) == ["HEAD", "LIST"]
    assert_history(log, events(1, 2))
    assert listed(log) == [(ARN, LATER)]


@pytest.mark.parametrize("leftovers", [False, True])
def test_racing_creators_make_one_execution(raw: Any, leftovers: bool) -> None:
    if "amazonaws.com" in raw.meta.endpoint_url:  # moto: run on DynamoDB Local only
        pytest.skip(
            "moto's in-process conditional writes are not atomic across threads "
            "(tests/dynamodb_local/pending_on_dynamodb_local.py runs this on DynamoDB Local)"
        )
    if leftovers:
        expired_execution(raw, 3)
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def start(n: int) -> None:
        log = DynamoDBLog(TABLE, client=raw)
        barrier.wait()
        try:
            log.create(replace(again(), input={"creator": n}), events(1, 2))
            outcomes.append(f"created {n}")
        except ExecutionAlreadyExistsError:
            outcomes.append("exists")

    threads = [threading.Thread(target=start, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN exactly one created it, and its history is its own, listed once
    created = [o for o in outcomes if o.startswith("created")]
    assert len(created) == 1 and outcomes.count("exists") == 3, outcomes
    log = DynamoDBLog(TABLE, client=raw)
    stored = log.get(ARN)
    assert stored is not None and stored.input == {"creator": int(created[0].split()[1])}
    assert partition(raw) == ["HEAD", "LIST"]
    assert_history(log, events(1, 2))
    assert listed(log) == [(ARN, LATER)]


def test_a_concurrent_purge_before_the_head_is_put_leaves_it_listed(raw: Any) -> None:
    expired_execution(raw, 2)
    log, client = new_log(raw)
    other = DynamoDBLog(TABLE, client=raw)
    put_item = client.client.put_item

    def put_then_purge(**kwargs: Any) -> Any:
        if kwargs["Item"]["sk"]["S"] == "HEAD" and "LIST" in partition(raw):
            other.purge(ARN)  # another creator's purge of the leftovers: the new entry too
        return put_item(**kwargs)

    client.client = type("Hooked", (), {"__getattr__": lambda _, name: getattr(raw, name)})()
    client.client.put_item = put_then_purge
    # WHEN a create that found leftovers purges them, and another purge deletes its entry
    log.create(again(), events(1, 2))
    # THEN the entry is put again once the head is in: the execution is listed
    assert partition(raw) == ["HEAD", "LIST"]
    assert listed(log) == [(ARN, LATER)]
    assert_history(log, events(1, 2))


class Hooked:
    """A client that runs ``hook`` (once) before the first call of ``operation``."""

    def __init__(self, raw: Any, operation: str, hook: Any, when: Any = None) -> None:
        self.raw, self.operation, self.hook, self.when = raw, operation, hook, when

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.raw, name)
        if name != self.operation:
            return call

        def hooked(**kwargs: Any) -> Any:
            if self.hook is not None and (self.when is None or self.when(kwargs)):
                hook, self.hook = self.hook, None
                hook()
            return call(**kwargs)

        return hooked


def test_a_late_sweep_between_the_listing_entry_and_the_head_keeps_the_entry(raw: Any) -> None:
    expired_execution(raw, 2)
    DynamoDBLog(TABLE, client=raw).purge(ARN)  # the sweeper's first delivery
    # WHEN a repeated (or late) delivery of the TTL record purges again, just before the
    # new execution's head is put (after its listing entry)
    sweeper_log = DynamoDBLog(TABLE, client=raw)
    log, client = new_log(raw)
    client.client = Hooked(
        raw,
        "put_item",
        lambda: sweeper_log.purge(ARN, keep_listed_from=1_000.0 + 0.001),
        when=lambda kwargs: kwargs["Item"]["sk"]["S"] == "HEAD",
    )
    log.create(again(), events(1, 2))
    # THEN the new execution's entry is kept: it is listed
    assert partition(raw) == ["HEAD", "LIST"]
    assert listed(log) == [(ARN, LATER)]
    assert entry_start(raw) == LATER


def test_an_old_head_expiring_after_the_read_leaves_no_leftovers_in_the_new_history(
    raw: Any,
) -> None:
    # GIVEN a finished execution, its head about to expire
    old, _ = new_log(raw)
    old.create(record(1), events(1, 2))
    old.commit(record(2), 1, events(3, 3))
    old.commit(record(3), 2, events(6, 3))
    # WHEN the create's read sees the old head, which TTL deletes right after
    creating, client = new_log(raw)
    client.client = Hooked(
        raw, "transact_write_items", lambda: raw.delete_item(TableName=TABLE, Key=HEAD_KEY)
    )
    creating.create(again(), events(1, 2))
    # THEN the transaction's condition on its event item found the leftovers: purged first
    assert client.calls[:2] == ["query", "transact_write_items"]
    assert_history(creating, events(1, 2))
    creating.commit(again(2), 1, events(3, 1))
    creating.commit(again(3), 2, events(4, 1))
    assert_history(creating, events(1, 2) + events(3, 1) + events(4, 1))
    assert listed(creating) == [(ARN, LATER)]


def test_an_old_listing_entry_alone_is_replaced_even_if_the_creator_dies(raw: Any) -> None:
    expired_execution(raw, 0)
    for sk in ("TK#old-task",):  # a purge stopped after the event items and the lease
        raw.delete_item(TableName=TABLE, Key={**HEAD_KEY, "sk": {"S": sk}})
    assert partition(raw) == ["LIST"]
    # WHEN a create whose creator dies after its head, before putting the entry again
    dying, client = new_log(raw)
    client.die[("put_item", "before")] = 2
    with pytest.raises(Crash):
        dying.create(again(), events(1, 2))
    # THEN the old entry was purged and the new one put before the head: listed as the new
    # one, under its own start date (ListExecutions' newest-first order and its pages)
    assert partition(raw) == ["HEAD", "LIST"]
    assert listed(dying) == [(ARN, LATER)]
    assert entry_start(raw) == LATER
    assert_history(DynamoDBLog(TABLE, client=raw), events(1, 2))


@pytest.mark.parametrize("retry_dies", [True, False], ids=["retry-dies", "retry-refused"])
def test_a_retried_create_spares_the_first_creators_fresh_listing_entry(
    raw: Any, retry_dies: bool
) -> None:
    first, first_client = new_log(raw)
    retry, retry_client = new_log(raw)
    retried = replace(record(1), start_date=1_000.4)  # the client's retry, 400 ms later
    outcome: list[str] = []

    def the_retry() -> None:
        # (with its own puts after the first creator's head: a die or the head's refusal)
        retry_client.die[("put_item", "before")] = 0
        try:
            retry.create(retried, events(1, 2))
        except Crash:
            outcome.append("died")

    # WHEN the retry reads the partition and purges between the first creator's entry and
    # its head (it sees the entry alone: leftovers, to it)
    first_client.client = Hooked(
        raw, "put_item", the_retry, when=lambda kwargs: kwargs["Item"]["sk"]["S"] == "HEAD"
    )
    first.create(record(1), events(1, 2))
    assert outcome == ["died"]
    if not retry_dies:
        with pytest.raises(ExecutionAlreadyExistsError):
            new_log(raw)[0].create(retried, events(1, 2))
    # THEN the first creator's execution is listed, under its own start date
    assert partition(raw) == ["HEAD", "LIST"]
    assert listed(first) == [(ARN, 1_000.0)]
    assert entry_start(raw) == 1_000.0
