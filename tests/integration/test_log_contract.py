"""The CoordinationLog contract, run against the in-memory twin and DynamoDBLog on moto.

Every contract test takes the parametrised ``log`` fixture, so both
implementations must behave identically; a few DynamoDB-only tests at the end
check the table layout, compression, size limits and error wrapping. moto runs
in-process (``mock_aws``): no network, no real credentials.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from stepflow.asl import parse
from stepflow.engine import RunTask
from stepflow.runtime import (
    ConflictError,
    CoordinationLog,
    ExecutionAlreadyExistsError,
    ExecutionRecord,
    InMemoryBus,
    InMemoryLog,
    Message,
    Stepper,
    leases,
)
from stepflow.runtime.leases import LeaseConflictError, LeaseFence, TaskLease
from stepflow.runtime.outcome import TaskOutcome
from stepflow.testing import execute
from stepflow.testing.handlers import run_handler

from tests.moto_env import offline_aws

pytest.importorskip("moto")
boto3 = pytest.importorskip("boto3")
botocore_exceptions = pytest.importorskip("botocore.exceptions")

from stepflow.aws import (  # noqa: E402  (after the importorskip guards)
    DynamoDBLog,
    LogUnavailableError,
    PayloadTooLargeError,
    create_table,
)
from stepflow.aws.s3_payloads import S3PayloadStore  # noqa: E402
from stepflow.runtime.payloads import InMemoryPayloadStore  # noqa: E402

TABLE = "stepflow-log"
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:StateMachine"
ARN = "arn:aws:states:us-east-1:123456789012:execution:StateMachine:e1"


# -- fixtures ------------------------------------------------------------------


@pytest.fixture(scope="module")
def aws() -> Iterator[Any]:
    """moto's in-process AWS, with fake credentials, for the whole module (fast)."""
    with pytest.MonkeyPatch.context() as env, offline_aws(env):
        yield boto3.client("dynamodb", region_name="us-east-1")


@pytest.fixture
def dynamodb(aws: Any) -> Iterator[Any]:
    """A DynamoDB client (moto) with a fresh, empty log table named ``TABLE``."""
    create_table(aws, TABLE)
    yield aws
    aws.delete_table(TableName=TABLE)


@pytest.fixture(
    params=["memory", "dynamodb", "dynamodb-compressed", "dynamodb-offloaded", "dynamodb-s3"]
)
def log(request: pytest.FixtureRequest) -> CoordinationLog:
    """Each implementation of the contract (compressed: every JSON document zlib'd).

    offloaded / s3: budgets so small that decisions span several event items and
    documents (head and events) go to a payload store, in memory or on moto S3.
    """
    if request.param == "memory":
        return InMemoryLog()
    client = request.getfixturevalue("dynamodb")
    if request.param == "dynamodb-offloaded":
        store = InMemoryPayloadStore()
        return DynamoDBLog(
            TABLE, client=client, payloads=store, item_budget=2000, transaction_budget=1200
        )
    if request.param == "dynamodb-s3":
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="stepflow-payloads")
        return DynamoDBLog(
            TABLE,
            client=client,
            compress_above=0,
            payloads=S3PayloadStore("stepflow-payloads", client=s3),
            item_budget=2000,
            transaction_budget=1200,
        )
    compress_above = 0 if request.param == "dynamodb-compressed" else 8192
    return DynamoDBLog(TABLE, client=client, compress_above=compress_above)


# -- helpers -------------------------------------------------------------------


def make_record(seq: int = 1, **changes: Any) -> ExecutionRecord:
    record = ExecutionRecord(
        execution_arn=ARN,
        state_machine_arn=SM,
        name="e1",
        input={"naïve": "日本語 ✓ 🚀", "nested": {"list": [1, 2.5, None, True, {"x": []}]}},
        status="RUNNING",
        seq=seq,
        state={"format": 1, "frames": {"0": {"n": 0.1 + 0.2}}, "big": 2**70, "neg": -1e-7},
        outbox=(
            Message(ARN, f"{ARN}#{seq}#0", "task", {"task_id": "t1", "input": {"é": 1}}),
            Message(ARN, f"{ARN}#{seq}#1", "event", {"type": "TimerFired"}, 2_400.25),
        ),
        start_date=1_000.125,
        stop_date=None,
        attributes={"trace": "ü"},
    )
    return replace(record, **changes)


def make_events(first: int, count: int, step: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "id": first + i * step,
            "previousEventId": first + i * step - 1,
            "type": "PassStateEntered",
            "timestamp": 1_000.5 + first + i * step,
            "stateEnteredEventDetails": {"name": f"Stäte {first + i * step}", "input": '{"a":1}'},
        }
        for i in range(count)
    ]


def all_history(
    log: CoordinationLog, limit: int, *, reverse: bool = False
) -> list[list[dict[str, Any]]]:
    pages, token = [], None
    while True:
        page = log.history(ARN, next_token=token, limit=limit, reverse=reverse)
        pages.append(page.events)
        if page.next_token is None:
            return pages
        token = page.next_token


def flat(pages: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [event for page in pages for event in page]


# -- create / get ----------------------------------------------------------------


def test_create_then_get_round_trips_every_field(log: CoordinationLog) -> None:
    # GIVEN a record with unicode, nested JSON, floats, a big integer and an outbox
    record = make_record(attributes={"k": ["v", 1.5]})
    events = make_events(1, 3)
    # WHEN it is created and read back
    log.create(record, events)
    # THEN every field comes back equal, and so do the first events
    assert log.get(ARN) == record
    assert log.history(ARN).events == events
    assert log.get(ARN + "-missing") is None


def test_a_finished_record_round_trips_its_stop_date_and_empty_outbox(
    log: CoordinationLog,
) -> None:
    # GIVEN a record that finished in its first decision
    record = make_record(status="SUCCEEDED", stop_date=1_000.5, outbox=(), input=None)
    # WHEN created and read back THEN it is equal
    log.create(record, make_events(1, 2))
    assert log.get(ARN) == record


def test_create_twice_raises_with_the_existing_record(log: CoordinationLog) -> None:
    # GIVEN an existing execution
    first = make_record()
    log.create(first, make_events(1, 2))
    # WHEN the same ARN is created again with other content
    with pytest.raises(ExecutionAlreadyExistsError) as caught:
        log.create(replace(first, input={"other": 1}), make_events(1, 5))
    # THEN the error carries the stored record, and nothing changed
    assert caught.value.existing == first
    assert log.get(ARN) == first
    assert log.history(ARN).events == make_events(1, 2)


# -- commit ----------------------------------------------------------------------


def test_commit_at_the_current_seq_appends_events_and_replaces_the_head(
    log: CoordinationLog,
) -> None:
    # GIVEN an execution at seq 1
    log.create(make_record(), make_events(1, 2))
    # WHEN a decision commits from seq 1, then an event-less one from seq 2
    second = make_record(seq=2, state={"format": 1, "step": 2}, outbox=())
    log.commit(second, 1, make_events(3, 4))
    third = replace(second, seq=3, status="SUCCEEDED", stop_date=1_234.5, attributes={})
    log.commit(third, 2, [])
    # THEN the head is the last record and the history holds every event once
    assert log.get(ARN) == third
    assert log.history(ARN).events == make_events(1, 6)


def test_commit_with_a_stale_seq_conflicts_and_changes_nothing(log: CoordinationLog) -> None:
    # GIVEN an execution that moved on to seq 2
    log.create(make_record(), make_events(1, 1))
    head = make_record(seq=2, status="RUNNING", outbox=())
    log.commit(head, 1, make_events(2, 1))
    # WHEN a decision made from seq 1 commits (with and without events)
    for events in (make_events(3, 2), []):
        with pytest.raises(ConflictError) as caught:
            log.commit(make_record(seq=2, status="FAILED"), 1, events)
        assert caught.value.expected_seq == 1
    # THEN neither the head nor the history changed
    assert log.get(ARN) == head
    assert log.history(ARN).events == make_events(1, 2)


def test_commit_to_a_missing_execution_conflicts(log: CoordinationLog) -> None:
    # GIVEN no execution WHEN committing THEN ConflictError, and nothing is created
    with pytest.raises(ConflictError):
        log.commit(make_record(seq=2), 1, make_events(1, 1))
    assert log.get(ARN) is None


def test_of_two_commits_from_the_same_seq_exactly_one_wins(log: CoordinationLog) -> None:
    # GIVEN two steppers that both read the execution at seq 1
    log.create(make_record(), make_events(1, 1))
    read_a, read_b = log.get(ARN), log.get(ARN)
    assert read_a is not None and read_b is not None
    a = replace(read_a, seq=2, state={"format": 1, "by": "a"})
    b = replace(read_b, seq=2, state={"format": 1, "by": "b"})
    # WHEN both commit their decision
    outcomes = []
    for record, events in ((a, make_events(2, 3)), (b, make_events(2, 1))):
        try:
            log.commit(record, 1, events)
            outcomes.append("won")
        except ConflictError:
            outcomes.append("lost")
    # THEN exactly one wins, and only its head and events are stored
    assert outcomes == ["won", "lost"]
    assert log.get(ARN) == a
    assert log.history(ARN).events == make_events(1, 4)


# -- outbox ----------------------------------------------------------------------


def test_clear_outbox_only_at_the_current_seq(log: CoordinationLog) -> None:
    # GIVEN a head at seq 2 with an outbox
    log.create(make_record(), make_events(1, 1))
    head = make_record(seq=2)
    log.commit(head, 1, make_events(2, 1))
    # WHEN the outbox of seq 1 is cleared THEN nothing changes
    log.clear_outbox(ARN, 1)
    assert log.get(ARN) == head
    # WHEN the outbox of seq 2 is cleared (twice) THEN only the outbox is emptied
    log.clear_outbox(ARN, 2)
    log.clear_outbox(ARN, 2)
    assert log.get(ARN) == replace(head, outbox=())
    # AND clearing an unknown execution is a no-op
    log.clear_outbox(ARN + "-missing", 1)


def test_keep_outbox_only_at_the_current_seq(log: CoordinationLog) -> None:
    # GIVEN a head at seq 2 whose outbox holds a large task message (compressed, primed
    # by the state, or offloaded) and a timer
    log.create(make_record(), make_events(1, 1))
    big = {"task_id": "t1", "input": {"frames": [{"n": i, "s": "état " * 8} for i in range(60)]}}
    task = Message(ARN, f"{ARN}#2#0", "task", big)
    head = make_record(seq=2, outbox=(task, make_record(seq=2).outbox[1]))
    log.commit(head, 1, make_events(2, 1))
    # WHEN the outbox of seq 1 is replaced THEN nothing changes
    log.keep_outbox(replace(head, seq=1), [task])
    assert log.get(ARN) == head
    # WHEN the outbox of seq 2 is replaced by its task (twice) THEN only the outbox changes
    log.keep_outbox(head, [task])
    log.keep_outbox(head, [task])
    assert log.get(ARN) == replace(head, outbox=(task,))
    assert log.history(ARN).events == make_events(1, 2)
    # AND replacing the outbox of an unknown execution is a no-op
    log.keep_outbox(replace(head, execution_arn=ARN + "-missing"), [])
    assert log.get(ARN + "-missing") is None


# -- history ---------------------------------------------------------------------


def test_history_pages_through_thousands_of_events_in_order(log: CoordinationLog) -> None:
    # GIVEN 2,500+ events across 120 decisions of 1 to 41 events each
    log.create(make_record(), make_events(1, 3))
    next_id, seq = 4, 1
    for i in range(120):
        count = 1 + (i * 7) % 41
        log.commit(make_record(seq=seq + 1, outbox=()), seq, make_events(next_id, count))
        next_id, seq = next_id + count, seq + 1
    expected = make_events(1, next_id - 1)
    assert len(expected) > 2_500
    for limit in (100, 1000, 37):
        # WHEN the history is read page by page
        pages = all_history(log, limit)
        # THEN every event comes once, in order, in full pages but the last
        assert flat(pages) == expected
        assert all(len(page) == limit for page in pages[:-1])
        assert 0 < len(pages[-1]) <= limit


@pytest.mark.parametrize("token", ["junk", "-5:0", "-5", "4:-1", "99999999999999:0"])
def test_a_malformed_or_out_of_range_history_token_is_bad_input(
    log: CoordinationLog, token: str
) -> None:
    # GIVEN an execution with two decisions
    log.create(make_record(), make_events(1, 3))
    log.commit(make_record(seq=2), 1, make_events(4, 3))
    # WHEN a token outside the log's range is presented THEN it is bad input, not an outage
    with pytest.raises(ValueError, match="token"):
        log.history(ARN, next_token=token, limit=2)
    with pytest.raises(ValueError, match="limit"):
        log.history(ARN, limit=0)


def test_history_pagination_does_not_depend_on_dense_event_ids(log: CoordinationLog) -> None:
    # GIVEN decisions whose event ids have gaps (10, 20, 30, ...)
    log.create(make_record(), make_events(10, 3, step=10))
    log.commit(make_record(seq=2), 1, make_events(100, 4, step=100))
    log.commit(make_record(seq=3), 2, make_events(10_000, 2, step=10))
    expected = make_events(10, 3, 10) + make_events(100, 4, 100) + make_events(10_000, 2, 10)
    # WHEN paging with small limits THEN every event comes once, in order
    for limit in (1, 2, 4, 100):
        assert flat(all_history(log, limit)) == expected


def test_history_of_an_unknown_execution_is_empty(log: CoordinationLog) -> None:
    page = log.history(ARN)
    assert page.events == [] and page.next_token is None
    page = log.history(ARN, reverse=True)
    assert page.events == [] and page.next_token is None


def test_reversed_history_pages_come_newest_first(log: CoordinationLog) -> None:
    # GIVEN decisions of 3, 5 and 1 events
    log.create(make_record(), make_events(1, 3))
    log.commit(make_record(seq=2), 1, make_events(4, 5))
    log.commit(make_record(seq=3), 2, make_events(9, 1))
    # WHEN paged newest first THEN each event comes once, full pages but the last, none empty
    for limit in (1, 2, 3, 4, 8, 9, 100):
        pages = all_history(log, limit, reverse=True)
        assert flat(pages) == make_events(1, 9)[::-1]
        assert all(len(page) == limit for page in pages[:-1]) and pages[-1]


def test_reversed_history_reaches_an_event_zero_in_an_item_of_its_own(
    log: CoordinationLog,
) -> None:
    log.create(make_record(), make_events(0, 1))
    log.commit(make_record(seq=2), 1, make_events(1, 3))
    for limit in (1, 3, 4):
        assert flat(all_history(log, limit, reverse=True)) == make_events(0, 4)[::-1]


def test_reversed_pagination_does_not_depend_on_dense_event_ids(log: CoordinationLog) -> None:
    # GIVEN decisions whose event ids have gaps
    log.create(make_record(), make_events(10, 3, step=10))
    log.commit(make_record(seq=2), 1, make_events(100, 4, step=100))
    log.commit(make_record(seq=3), 2, make_events(10_000, 2, step=10))
    expected = make_events(10, 3, 10) + make_events(100, 4, 100) + make_events(10_000, 2, 10)
    # WHEN paged newest first THEN every event comes once (a last page may be empty: the
    # DynamoDB log reads nothing to learn there is no event below an id above 1)
    for limit in (1, 2, 4, 100):
        pages = all_history(log, limit, reverse=True)
        assert flat(pages) == expected[::-1]
        assert all(pages[:-2]) and all(len(page) == limit for page in pages[:-2])


def test_a_history_token_is_read_in_its_own_direction_only(log: CoordinationLog) -> None:
    log.create(make_record(), make_events(1, 3))
    log.commit(make_record(seq=2), 1, make_events(4, 3))
    forward = log.history(ARN, limit=2).next_token
    backward = log.history(ARN, limit=2, reverse=True).next_token
    assert forward and backward and forward != backward
    with pytest.raises(ValueError, match="token"):
        log.history(ARN, next_token=forward, limit=2, reverse=True)
    with pytest.raises(ValueError, match="token"):
        log.history(ARN, next_token=backward, limit=2)
    with pytest.raises(ValueError, match="limit"):
        log.history(ARN, limit=0, reverse=True)


# -- task leases -----------------------------------------------------------------


def test_claim_acquired_busy_expired_takeover_and_done(log: CoordinationLog) -> None:
    # GIVEN a task nobody holds WHEN w1 claims it THEN it is acquired for 30 s
    first = leases.claim(log, ARN, "t-1", "w1", 100.0, 30.0)
    assert first.status == "acquired" and first.lease is not None
    # WHEN w2 claims it while the lease is live THEN it is busy (w1 too: no re-entry)
    assert leases.claim(log, ARN, "t-1", "w2", 129.9, 30.0).status == "busy"
    assert leases.claim(log, ARN, "t-1", "w1", 110.0, 30.0).status == "busy"
    # WHEN the lease expired THEN w2 takes it over, and w1 can no longer finish it
    second = leases.claim(log, ARN, "t-1", "w2", 130.0, 30.0)
    assert second.status == "acquired" and second.lease is not None
    leases.finish(log, first.lease, {"type": "TaskFailed", "by": "w1"})
    result = {"type": "TaskSucceeded", "task_id": "t-1", "output": {"ü": [1.5, None]}}
    leases.finish(log, second.lease, result)
    # THEN any later claim, even after the lease, is done with w2's result
    claim = leases.claim(log, ARN, "t-1", "w3", 10_000.0, 30.0)
    assert claim.status == "done" and claim.result == result
    # AND another task of the same execution is independent
    assert leases.claim(log, ARN, "t-2", "w3", 100.0, 30.0).status == "acquired"


def test_a_lease_is_written_only_on_top_of_the_version_it_was_read_at(
    log: CoordinationLog,
) -> None:
    # GIVEN no lease WHEN two writers both start from "none" THEN only the first lands
    fresh = TaskLease(ARN, "t-1")
    mine = fresh.next(owner="w1", until=60.0, delivery=1, queue="q", receipt="r1")
    log.put_lease(mine)
    with pytest.raises(LeaseConflictError):
        log.put_lease(fresh.next(owner="w2", until=60.0, delivery=1))
    # AND a write that skips a version is refused too
    with pytest.raises(LeaseConflictError):
        log.put_lease(mine.next().next())
    assert log.lease(ARN, "t-1") == mine
    assert log.lease(ARN, "t-unknown") is None
    # WHEN the holder writes the next version THEN it reads back, every field intact
    released = leases.release(mine, 10.0)
    log.put_lease(released)
    assert log.lease(ARN, "t-1") == released


def test_a_fenced_commit_lands_only_while_the_lease_is_unchanged(log: CoordinationLog) -> None:
    # GIVEN an execution and the lease of its task's first delivery
    log.create(make_record(), make_events(1, 1))
    first = TaskLease(ARN, "t-1").next(owner="w1", delivery=1, until=60.0, lease_seconds=60.0)
    log.commit(
        make_record(seq=2), 1, make_events(2, 1), fence=LeaseFence(TaskLease(ARN, "t-1"), first)
    )
    assert log.lease(ARN, "t-1") == first
    # WHEN a heartbeat is committed with the lease's next version THEN both land
    beat = leases.heartbeat(first, 30.0)
    log.commit(make_record(seq=3), 2, [], fence=LeaseFence(first, beat))
    assert log.lease(ARN, "t-1") == beat and log.get(ARN) == make_record(seq=3)
    # WHEN another worker took the task since (the lease moved on)
    second = beat.next(owner="w2", delivery=2)
    log.put_lease(second)
    # THEN a report checked against the old lease writes nothing, events and head included
    with pytest.raises(ConflictError):
        log.commit(make_record(seq=4), 3, make_events(3, 1), fence=LeaseFence(beat))
    with pytest.raises(ConflictError):
        log.commit(make_record(seq=4), 3, [], fence=LeaseFence(beat, leases.heartbeat(beat, 40.0)))
    assert log.get(ARN) == make_record(seq=3) and log.lease(ARN, "t-1") == second
    assert log.history(ARN).events == make_events(1, 2)
    # AND one checked against the current lease lands
    log.commit(make_record(seq=4), 3, make_events(3, 1), fence=LeaseFence(second))
    assert log.get(ARN) == make_record(seq=4) and log.lease(ARN, "t-1") == second


def test_a_fenced_commit_on_a_stale_head_writes_no_lease(log: CoordinationLog) -> None:
    log.create(make_record(), make_events(1, 1))
    new = TaskLease(ARN, "t-1").next(owner="w1", delivery=1, until=60.0)
    with pytest.raises(ConflictError):
        log.commit(make_record(seq=3), 2, [], fence=LeaseFence(TaskLease(ARN, "t-1"), new))
    assert log.lease(ARN, "t-1") is None


def test_racing_claims_in_threads_acquire_once() -> None:
    # GIVEN 8 threads claiming one attempt at once (in memory: moto's in-process
    # DynamoDB does not check conditions atomically across threads)
    log = InMemoryLog()
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def claim(n: int) -> None:
        start.wait()
        outcomes.append(leases.claim(log, ARN, "t-1", f"w{n}", 0.0, 60.0).status)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN exactly one acquired it
    assert sorted(outcomes) == ["acquired"] + ["busy"] * 7


def test_a_commit_with_events_that_does_not_move_the_seq_is_refused(log: CoordinationLog) -> None:
    # GIVEN an execution at seq 1
    log.create(make_record(), make_events(1, 2))
    # WHEN events are committed at the same seq THEN a clear error, nothing written
    with pytest.raises(ValueError, match="move the seq"):
        log.commit(make_record(seq=1, outbox=()), 1, make_events(3, 1))
    assert log.get(ARN) == make_record()
    assert [e["id"] for e in log.history(ARN).events] == [1, 2]
    # AND an eventless one may keep it (an outbox kept, a head rewritten)
    log.commit(make_record(seq=1, outbox=()), 1, [])
    current = log.get(ARN)
    assert current is not None and current.outbox == ()


# -- DynamoDB only -----------------------------------------------------------------


def test_dynamodb_items_follow_the_table_layout(dynamodb: Any) -> None:
    # GIVEN an execution with two decisions and a task lease
    log = DynamoDBLog(TABLE, client=dynamodb)
    log.create(make_record(), make_events(1, 2))
    log.commit(make_record(seq=2, outbox=()), 1, make_events(3, 3))
    leases.claim(log, ARN, "t-1", "w1", 0.0, 60.0)
    # WHEN the partition is read raw
    items = dynamodb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"EX#{ARN}"}},
    )["Items"]
    # THEN there is one head, one item per decision but the last, one lease and one
    # listing entry: the last decision's events are in the head (log_pending)
    by_sk = {item["sk"]["S"]: item for item in items}
    assert sorted(by_sk) == ["EV#000000000001", "HEAD", "LIST", "TK#t-1"]
    head = by_sk["HEAD"]
    assert head["seq"] == {"N": "2"} and head["last_event_id"] == {"N": "5"}
    assert head["ev_sk"] == {"S": "EV#000000000003"} and head["ev_seq"] == {"N": "2"}
    assert {"ev", "ev_z"} & set(head)
    assert {"input", "state", "outbox"} <= set(head) and "stop_date" not in head
    # AND only the listing entry is in the listing index: a commit copies nothing to it
    assert "gsi1pk" not in head and "gsi1sk" not in head
    assert set(by_sk["LIST"]) == {"pk", "sk", "gsi1pk", "gsi1sk"}
    assert by_sk["TK#t-1"]["owner"] == {"S": "w1"}


def test_dynamodb_large_documents_are_compressed_and_oversized_ones_refused(
    dynamodb: Any,
) -> None:
    log = DynamoDBLog(TABLE, client=dynamodb)
    # GIVEN a compressible 1 MB input WHEN created THEN it is stored compressed, intact
    record = make_record(input={"blob": "a" * 1_000_000})
    log.create(record, make_events(1, 1))
    assert log.get(ARN) == record
    head = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": f"EX#{ARN}"}, "sk": {"S": "HEAD"}})
    assert "input_z" in head["Item"] and "input" not in head["Item"]
    # AND a later small head drops the compressed attribute
    log.commit(replace(record, seq=2, input={"small": 1}), 1, make_events(2, 1))
    head = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": f"EX#{ARN}"}, "sk": {"S": "HEAD"}})
    assert "input" in head["Item"] and "input_z" not in head["Item"]
    # GIVEN an incompressible 500 KB state WHEN committed THEN a clear error, nothing written
    noise = base64.b64encode(os.urandom(500_000)).decode()
    with pytest.raises(PayloadTooLargeError, match="400 KB"):
        log.commit(make_record(seq=3, state={"noise": noise}), 2, make_events(3, 1))
    current = log.get(ARN)
    assert current is not None and current.seq == 2


def test_dynamodb_infrastructure_errors_are_wrapped(dynamodb: Any) -> None:
    # GIVEN a client whose every call is throttled
    class Throttled:
        def __getattr__(self, operation: str) -> Any:
            def fail(**_: Any) -> Any:
                error = {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}
                raise botocore_exceptions.ClientError(error, operation)

            return fail

    log = DynamoDBLog(TABLE, client=Throttled())
    # WHEN the log is used THEN LogUnavailableError, chained to the client error
    with pytest.raises(LogUnavailableError) as caught:
        log.commit(make_record(seq=2), 1, make_events(1, 1))
    assert isinstance(caught.value.__cause__, botocore_exceptions.ClientError)
    with pytest.raises(LogUnavailableError):
        log.get(ARN)


def test_dynamodb_client_is_created_lazily_from_the_environment(dynamodb: Any) -> None:
    # GIVEN no client WHEN the log is constructed THEN it makes one (region from env)
    log = DynamoDBLog(TABLE)
    log.create(make_record(), make_events(1, 1))
    assert DynamoDBLog(TABLE, client=dynamodb).get(ARN) == make_record()


def test_dynamodb_rejects_an_invalid_history_token(dynamodb: Any) -> None:
    with pytest.raises(ValueError, match="token"):
        DynamoDBLog(TABLE, client=dynamodb).history(ARN, next_token="not-a-token")


# -- end to end --------------------------------------------------------------------

FN = "arn:aws:lambda:us-east-1:123456789012:function:"
DEFINITION = {
    "StartAt": "Validate",
    "States": {
        "Validate": {
            "Type": "Task",
            "Resource": FN + "validate",
            "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 2}],
            "Next": "Wait",
        },
        "Wait": {"Type": "Wait", "Seconds": 1200, "Next": "Lines"},
        "Lines": {
            "Type": "Map",
            "ItemsPath": "$.lines",
            "MaxConcurrency": 2,
            "ItemProcessor": {
                "StartAt": "Pack",
                "States": {"Pack": {"Type": "Task", "Resource": FN + "pack", "End": True}},
            },
            "ResultPath": "$.packed",
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}
INPUT = {"lines": [1, 2, 3], "note": "ünï"}
START = 1_000.0


class Flaky(Exception):
    pass


def handlers() -> dict[str, Any]:
    seen: set[str] = set()

    def validate(payload: Any) -> Any:
        if "validate" not in seen:  # fails once, then succeeds
            seen.add("validate")
            raise Flaky("first try")
        return {**payload, "valid": True}

    return {"validate": validate, "pack": lambda n: n * 10}


def test_the_stepper_on_dynamodb_matches_the_in_memory_engine(dynamodb: Any) -> None:
    # GIVEN the reference outcome of the pure in-memory engine
    reference = execute(
        DEFINITION,
        INPUT,
        handlers=handlers(),
        name="e1",
        seed=7,
        start_time=datetime.fromtimestamp(START, UTC),
    )
    # AND a Stepper over DynamoDBLog (moto) and the in-memory bus
    machine = parse(DEFINITION)
    log = DynamoDBLog(TABLE, client=dynamodb)
    bus = InMemoryBus(START)
    bound = handlers()

    def invoke(body: dict[str, Any]) -> TaskOutcome:
        command = RunTask(body["task_id"], body["resource"], body["input"], body["state_name"])
        return run_handler(bound, command)

    stepper = Stepper(
        log=log, bus=bus, definitions=lambda _: machine, clock=lambda: bus.now, invoker=invoke
    )
    record = stepper.start_execution(state_machine_arn=SM, name="e1", input=INPUT, seed=7)
    # WHEN every message is delivered until the bus drains
    for _ in range(1_000):
        message = bus.receive()
        if message is None:
            break
        stepper.handle(message)
        bus.ack(message)
    else:
        raise AssertionError("the bus did not drain")
    # THEN the durable outcome equals the in-memory one, event for event
    final = log.get(record.execution_arn)
    assert final is not None and final.status == "SUCCEEDED" == reference.status
    assert final.state["output"] == reference.result
    assert not final.outbox
    history = flat(all_history(log, 5))
    assert history == reference.history
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))


def test_a_head_is_listed_under_its_listed_under_attribute(log: CoordinationLog) -> None:
    run = "arn:aws:states:us-east-1:123456789012:mapRun:M/Each:r1"
    child = replace(
        make_record(),
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:M/Each:r1-0",
        name="r1-0",
        attributes={"map_run_arn": run, "listed_under": run},
    )
    hidden = replace(make_record(), execution_arn=run, name="r1", attributes={"listed_under": ""})
    log.create(child, [])
    log.create(hidden, [])
    log.commit(replace(child, seq=2, status="SUCCEEDED", stop_date=2_000.0), 1, [])
    listed, token = log.list_executions(run)
    assert [r.execution_arn for r in listed] == [child.execution_arn] and token is None
    assert listed[0].status == "SUCCEEDED"
    assert log.list_executions(run, status="RUNNING") == ([], None)
    assert log.list_executions(SM) == ([], None)  # neither is listed under its state machine
