"""DynamoDBLog with a PayloadStore: payloads and histories of any size, on moto.

Large documents go to S3 (moto) before the transaction, the log keeps
references; decisions with very many events span several items of one
transaction. Every test checks that no item in the table exceeds 400 KB.
Run with ``-s`` to see the bytes stored in DynamoDB and in S3 per case.
"""

from __future__ import annotations

import base64
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stepflow.asl import parse
from stepflow.engine import RunTask
from stepflow.limits import MIB, Limits
from stepflow.runtime import CoordinationLog, ExecutionRecord, InMemoryBus, Message, Stepper, leases
from stepflow.runtime.outcome import TaskOutcome
from stepflow.runtime.payloads import InMemoryPayloadStore, PayloadStoreUnavailableError
from stepflow.testing import execute
from stepflow.testing.handlers import run_handler

from tests.moto_env import offline_aws

pytest.importorskip("moto")
boto3 = pytest.importorskip("boto3")

from stepflow.aws import (  # noqa: E402  (after the importorskip guards)
    DynamoDBLog,
    LogIntegrityError,
    LogUnavailableError,
    PayloadTooLargeError,
    create_table,
)
from stepflow.aws.log_items import chunk_ranges  # noqa: E402
from stepflow.aws.s3_payloads import S3PayloadStore  # noqa: E402
from stepflow.aws.topology import PAYLOAD_PREFIX  # noqa: E402

TABLE = "stepflow-log-large"
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:Big"
ARN = "arn:aws:states:us-east-1:123456789012:execution:Big:e1"
LIMIT = 400 * 1024
_buckets = itertools.count()


def noise(size: int) -> str:
    """``size`` characters that do not compress."""
    return base64.b64encode(os.urandom(size * 3 // 4)).decode()[:size]


class Recording:
    """A DynamoDB client that records transactions and can crash right before a commit's write.

    A commit is a transaction, or one ``UpdateItem`` whose head carries its events.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.transactions: list[list[dict[str, Any]]] = []
        self.crashes = 0

    def __getattr__(self, operation: str) -> Any:
        call = getattr(self.client, operation)
        if operation not in ("transact_write_items", "update_item"):
            return call

        def transact(**kwargs: Any) -> Any:
            if self.crashes:
                self.crashes -= 1
                raise ConnectionError("the process died before the commit's write")
            if operation == "transact_write_items":
                self.transactions.append(kwargs["TransactItems"])
            return call(**kwargs)

        return transact


@dataclass
class Env:
    dynamodb: Any
    s3: Any
    bucket: str
    client: Recording

    def log(self, **options: Any) -> DynamoDBLog:
        store = S3PayloadStore(self.bucket, client=self.s3)
        return DynamoDBLog(TABLE, client=self.client, payloads=store, **options)

    def items(self) -> list[dict[str, Any]]:
        pages = self.dynamodb.get_paginator("scan").paginate(TableName=TABLE)
        return [item for page in pages for item in page["Items"]]

    def objects(self) -> dict[str, int]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}

    def check_sizes(self, case: str) -> None:
        """No item over 400 KB; print what the case stored where."""
        sizes = [size_of(item) for item in self.items()]
        assert sizes and max(sizes) <= LIMIT
        in_s3 = self.objects()
        print(
            f"\n{case}: DynamoDB {len(sizes)} items, {sum(sizes):,} B (largest {max(sizes):,} B);"
            f" S3 {len(in_s3)} objects, {sum(in_s3.values()):,} B"
        )


def size_of(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it (names + values; numbers as text, generously)."""
    total = 0
    for name, value in item.items():
        ((kind, raw),) = value.items()
        total += len(name.encode())
        total += len(raw) if kind == "B" else len(str(raw).encode())
    return total


@pytest.fixture(scope="module")
def aws() -> Iterator[tuple[Any, Any]]:
    with pytest.MonkeyPatch.context() as env, offline_aws(env):
        yield (
            boto3.client("dynamodb", region_name="us-east-1"),
            boto3.client("s3", region_name="us-east-1"),
        )


@pytest.fixture
def env(aws: tuple[Any, Any]) -> Iterator[Env]:
    """A fresh log table and a fresh, empty payload bucket."""
    dynamodb, s3 = aws
    bucket = f"stepflow-payloads-{next(_buckets)}"
    s3.create_bucket(Bucket=bucket)
    create_table(dynamodb, TABLE)
    yield Env(dynamodb, s3, bucket, Recording(dynamodb))
    dynamodb.delete_table(TableName=TABLE)


def make_record(seq: int = 1, **changes: Any) -> ExecutionRecord:
    record = ExecutionRecord(
        execution_arn=ARN,
        state_machine_arn=SM,
        name="e1",
        input={"order": "ü", "lines": [1, 2, 3]},
        status="RUNNING",
        seq=seq,
        state={"format": 1, "step": seq},
    )
    return replace(record, **changes)


def make_events(first: int, count: int, noisy: int = 0) -> list[dict[str, Any]]:
    """Events with ``noisy`` characters of incompressible output each."""
    return [
        {
            "id": first + i,
            "previousEventId": first + i - 1,
            "type": "MapIterationSucceeded",
            "timestamp": 1_000.5 + i,
            "mapIterationSucceededEventDetails": {"name": "Lines", "index": i, "out": noise(noisy)},
        }
        for i in range(count)
    ]


def full_history(log: CoordinationLog, limit: int) -> list[dict[str, Any]]:
    events, token = [], None
    while True:
        page = log.history(ARN, next_token=token, limit=limit)
        assert len(page.events) == limit or page.next_token is None
        events.extend(page.events)
        if page.next_token is None:
            return events
        token = page.next_token


def transaction_bytes(items: list[dict[str, Any]]) -> int:
    return sum(
        size_of(op["Put"]["Item"])
        if "Put" in op
        else size_of(op["Update"]["ExpressionAttributeValues"])
        for op in items
    )


# -- large documents ----------------------------------------------------------------


def test_a_1_mb_state_round_trips_through_the_store(env: Env) -> None:
    # GIVEN an execution whose decision produces a 1 MB incompressible state
    log = env.log()
    log.create(make_record(), make_events(1, 2))
    big = make_record(seq=2, state={"format": 1, "blob": noise(1_000_000)})
    # WHEN it is committed
    log.commit(big, 1, make_events(3, 1))
    # THEN it reads back equal (from a fresh log too: nothing cached), history intact
    assert log.get(ARN) == big
    assert env.log().get(ARN) == big
    assert full_history(log, 1000) == make_events(1, 2) + make_events(3, 1)
    # AND the head holds a reference, the state lives in S3 under the prefix
    head = env.dynamodb.get_item(
        TableName=TABLE, Key={"pk": {"S": f"EX#{ARN}"}, "sk": {"S": "HEAD"}}
    )
    assert "state_ref" in head["Item"] and "state" not in head["Item"]
    assert f"{PAYLOAD_PREFIX}{head['Item']['state_ref']['S']}" in env.objects()
    env.check_sizes("1 MB state")
    # AND a later small state replaces the reference with an inline document
    log.commit(make_record(seq=3), 2, [])
    head = env.dynamodb.get_item(
        TableName=TABLE, Key={"pk": {"S": f"EX#{ARN}"}, "sk": {"S": "HEAD"}}
    )
    assert "state" in head["Item"] and "state_ref" not in head["Item"]
    assert log.get(ARN) == make_record(seq=3)


def test_an_offloaded_outbox_is_cleared_and_an_eventless_commit_offloads(env: Env) -> None:
    # GIVEN a head whose outbox (a task message with a 700 KB input) lives in S3
    log = env.log()
    task = Message(ARN, f"{ARN}#1#0", "task", {"task_id": "t1", "input": noise(700_000)})
    record = make_record(outbox=(task,))
    log.create(record, make_events(1, 1))
    assert log.get(ARN) == record
    # WHEN the outbox of another seq is cleared THEN nothing changes
    log.clear_outbox(ARN, 7)
    assert log.get(ARN) == record
    # WHEN the outbox of the current seq is cleared THEN it is empty, the reference gone
    log.clear_outbox(ARN, 1)
    assert log.get(ARN) == replace(record, outbox=())
    key = {"pk": {"S": f"EX#{ARN}"}, "sk": {"S": "HEAD"}}
    head = env.dynamodb.get_item(TableName=TABLE, Key=key)["Item"]
    assert "outbox_ref" not in head
    # AND an event-less commit of a 1 MB state offloads it too
    big = make_record(seq=2, state={"blob": noise(1_000_000)})
    log.commit(big, 1, [])
    assert env.log().get(ARN) == big
    env.check_sizes("outbox of 700 KB, then an event-less 1 MB state")


def test_an_unchanged_large_document_is_written_to_the_store_once(env: Env) -> None:
    # GIVEN a 700 KB input that every commit carries unchanged
    store = InMemoryPayloadStore()
    log = DynamoDBLog(TABLE, client=env.dynamodb, payloads=store)
    record = make_record(input={"blob": noise(700_000)})
    log.create(record, make_events(1, 1))
    # WHEN three more decisions commit
    for seq in (2, 3, 4):
        log.commit(replace(record, seq=seq), seq - 1, make_events(seq, 1))
    # THEN the input was uploaded once, and reads back
    assert store.puts == 1
    assert log.get(ARN) == replace(record, seq=4)


def test_a_huge_task_result_and_a_huge_event_are_offloaded(env: Env) -> None:
    # GIVEN a log with a store
    log = env.log()
    log.create(make_record(), make_events(1, 1))
    # WHEN a task result of 1 MB is recorded and an event with a 600 KB output committed
    result = {"type": "TaskSucceeded", "output": noise(1_000_000)}
    claim = leases.claim(log, ARN, "t-1", "w1", 0.0, 60.0)
    assert claim.status == "acquired" and claim.lease is not None
    leases.finish(log, claim.lease, result)
    events = make_events(2, 3, noisy=600_000)
    log.commit(make_record(seq=2), 1, events)
    # THEN both read back
    claim = leases.claim(log, ARN, "t-1", "w2", 100.0, 60.0)
    assert claim.status == "done" and claim.result == result
    assert full_history(log, 2) == make_events(1, 1) + events
    env.check_sizes("1 MB task result + 3 events of 600 KB")


# -- many events --------------------------------------------------------------------


def test_a_decision_of_20000_events_round_trips_and_pages(env: Env) -> None:
    # GIVEN a decision with 20,000 events (a big inline Map decided in one go)
    log = env.log()
    log.create(make_record(), make_events(1, 3))
    events = make_events(4, 20_000)
    log.commit(make_record(seq=2), 1, events)
    log.commit(make_record(seq=3), 2, make_events(20_004, 2))
    expected = make_events(1, 3) + events + make_events(20_004, 2)
    # WHEN the history is read in pages of several sizes THEN it is complete and in order
    for limit in (1000, 777):
        assert full_history(log, limit) == expected
    # AND the decision spans several event items, all written in one transaction
    big = max(env.client.transactions, key=len)  # (the create's: head, events, listing entry)
    assert 2 < len(big) <= 100 and transaction_bytes(big) <= 4_000_000
    assert log.get(ARN) == make_record(seq=3)
    env.check_sizes("20,000 events in one decision")


def test_a_decision_beyond_the_transaction_limits_offloads_event_chunks(env: Env) -> None:
    # GIVEN 1,500 events of 4 KB incompressible output each: 6 MB in one decision
    events = make_events(2, 1_500, noisy=4_000)
    # WHEN committed without a store THEN a clear error, and nothing is written
    plain = DynamoDBLog(TABLE, client=env.client)
    plain.create(make_record(), make_events(1, 1))
    with pytest.raises(PayloadTooLargeError, match="4 MB"):
        plain.commit(make_record(seq=2), 1, events)
    assert plain.get(ARN) == make_record() and full_history(plain, 10) == make_events(1, 1)
    # WHEN committed with a store THEN it fits DynamoDB's transaction limits
    log = env.log()
    log.commit(make_record(seq=2), 1, events)
    last = env.client.transactions[-1]
    assert len(last) <= 100 and transaction_bytes(last) <= 4_000_000
    # AND reads back page by page
    assert full_history(log, 333) == make_events(1, 1) + events
    env.check_sizes("1,500 events of 4 KB (6 MB) in one decision")


def test_a_decision_never_needs_more_than_100_items(env: Env) -> None:
    # GIVEN a budget that would cut 3,000 events into ~500 items
    log = env.log(item_budget=1_000)
    log.create(make_record(), make_events(1, 1))
    # WHEN they are committed THEN one transaction of at most 100 items holds them
    log.commit(make_record(seq=2), 1, make_events(2, 3_000))
    assert 50 < len(env.client.transactions[-1]) <= 100
    assert full_history(log, 500) == make_events(1, 1) + make_events(2, 3_000)
    env.check_sizes("3,000 events, 1 KB item budget")


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 5_000), max_size=300),
    limit=st.integers(-10, 20_000),
    max_chunks=st.integers(1, 99),
)
def test_event_chunks_are_contiguous_and_bounded(
    sizes: list[int], limit: int, max_chunks: int
) -> None:
    ranges = chunk_ranges(sizes, limit, max_chunks)
    # every part once, in order, in non-empty runs, never more runs than allowed
    assert [i for start, end in ranges for i in range(start, end)] == list(range(len(sizes)))
    assert all(start < end for start, end in ranges) and len(ranges) <= max_chunks
    # when the limit allows max_chunks runs, only single oversized parts exceed it
    if sizes and limit >= -(-sum(sizes) // max_chunks) + max(sizes):
        assert all(sum(sizes[a:b]) <= limit or b - a == 1 for a, b in ranges)


# -- failures -----------------------------------------------------------------------


def test_a_crash_between_the_payload_upload_and_the_commit_changes_nothing(env: Env) -> None:
    # GIVEN an execution at seq 1, and a 1 MB state to commit
    log = env.log()
    log.create(make_record(), make_events(1, 1))
    big = make_record(seq=2, state={"blob": noise(1_000_000)})
    # WHEN the process dies after the upload, before the transaction
    env.client.crashes = 1
    with pytest.raises(ConnectionError):
        log.commit(big, 1, make_events(2, 1))
    # THEN the log is unchanged; the bucket holds an object nothing refers to
    assert log.get(ARN) == make_record()
    assert full_history(log, 10) == make_events(1, 1)
    orphans = set(env.objects())
    assert len(orphans) == 1
    # AND a retry (a fresh process, from the same seq) commits
    retry = env.log()
    retry.commit(big, 1, make_events(2, 1))
    assert retry.get(ARN) == big
    assert set(env.objects()) == orphans  # content-addressed: the same object, reused


def test_without_a_store_an_oversized_document_is_refused(env: Env) -> None:
    log = DynamoDBLog(TABLE, client=env.dynamodb)
    log.create(make_record(), make_events(1, 1))
    with pytest.raises(PayloadTooLargeError, match="PayloadStore"):
        log.commit(make_record(seq=2, state={"blob": noise(700_000)}), 1, make_events(2, 1))
    assert log.get(ARN) == make_record()
    assert full_history(log, 10) == make_events(1, 1)


def test_a_missing_payload_object_is_an_integrity_error(env: Env) -> None:
    # GIVEN a head whose state lives in S3
    log = env.log()
    log.create(make_record(state={"blob": noise(700_000)}), make_events(1, 1))
    # WHEN the log is read without a store THEN an integrity error names the reference
    with pytest.raises(LogIntegrityError, match="no PayloadStore"):
        DynamoDBLog(TABLE, client=env.dynamodb).get(ARN)
    # WHEN the object was deleted THEN an integrity error, not a KeyError
    for key in env.objects():
        env.s3.delete_object(Bucket=env.bucket, Key=key)
    with pytest.raises(LogIntegrityError, match="no payload"):
        env.log().get(ARN)


def test_a_store_outage_is_a_log_outage_and_writes_nothing(env: Env) -> None:
    class Down(InMemoryPayloadStore):
        def put(self, data: bytes) -> str:
            raise PayloadStoreUnavailableError("S3 put_object failed: SlowDown")

    log = DynamoDBLog(TABLE, client=env.dynamodb, payloads=Down())
    with pytest.raises(LogUnavailableError) as caught:
        log.create(make_record(state={"blob": noise(700_000)}), make_events(1, 1))
    assert isinstance(caught.value.__cause__, PayloadStoreUnavailableError)
    assert log.get(ARN) is None


# -- end to end ---------------------------------------------------------------------

FN = "arn:aws:lambda:us-east-1:123456789012:function:"
DEFINITION = {
    "StartAt": "Fetch",
    "States": {
        "Fetch": {"Type": "Task", "Resource": FN + "fetch", "ResultPath": "$.doc", "Next": "Keep"},
        "Keep": {
            "Type": "Pass",
            "Parameters": {"size.$": "States.ArrayLength($.doc)"},
            "End": True,
        },
    },
}


def test_a_workflow_with_megabyte_payloads_matches_the_in_memory_engine(env: Env) -> None:
    # GIVEN a task returning 2 MB of incompressible text, and a 600 KB input (the payload
    # limit raised from AWS's 256 KiB: the S3 offload carries the rest)
    big = Limits(max_payload_bytes=8 * MIB)
    chunks = [noise(500_000) for _ in range(4)]
    start, input_ = 1_000.0, {"blob": noise(600_000)}
    handlers = {"fetch": lambda _: chunks}
    reference = execute(
        DEFINITION,
        input_,
        handlers=handlers,
        name="e1",
        seed=3,
        start_time=datetime.fromtimestamp(start, UTC),
        limits=big,
    )
    # WHEN it runs on the Stepper over DynamoDBLog + S3 (moto)
    machine, log, bus = parse(DEFINITION), env.log(), InMemoryBus(start)

    def invoke(body: dict[str, Any]) -> TaskOutcome:
        command = RunTask(body["task_id"], body["resource"], body["input"], body["state_name"])
        return run_handler(handlers, command)

    stepper = Stepper(
        log=log,
        bus=bus,
        definitions=lambda _: machine,
        clock=lambda: bus.now,
        invoker=invoke,
        limits=big,
    )
    record = stepper.start_execution(state_machine_arn=SM, name="e1", input=input_, seed=3)
    while (message := bus.receive()) is not None:
        stepper.handle(message)
        bus.ack(message)
    # THEN it ends as the in-memory engine does, event for event
    final = log.get(record.execution_arn)
    assert final is not None and (final.status, reference.status) == ("SUCCEEDED", "SUCCEEDED")
    assert final.state["output"] == reference.result == {"size": 4}
    history: list[dict[str, Any]] = []
    token = None
    while True:
        page = log.history(record.execution_arn, next_token=token, limit=2)
        history += page.events
        if (token := page.next_token) is None:
            break
    assert history == reference.history
    env.check_sizes("workflow: 600 KB input, 2 MB task output")


def test_the_lambda_stepper_uses_the_payload_bucket_when_configured(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    from stepflow.aws import stepper_lambda

    base = {"TABLE_NAME": TABLE, "QUEUE_URL": "https://q", "STEPFLOW_SIGNING_KEY": "k" * 32}
    # GIVEN no PAYLOAD_BUCKET THEN the log has no store (oversized writes are refused)
    plain = stepper_lambda.build_stepper(lambda _: parse(DEFINITION), base)
    assert plain.log.payloads is None  # type: ignore[attr-defined]
    # GIVEN PAYLOAD_BUCKET THEN the log offloads to that bucket
    environ = {**base, "PAYLOAD_BUCKET": env.bucket}
    stepper = stepper_lambda.build_stepper(lambda _: parse(DEFINITION), environ)
    store = stepper.log.payloads  # type: ignore[attr-defined]
    assert isinstance(store, S3PayloadStore) and store.bucket == env.bucket
    big = make_record(state={"blob": noise(700_000)})
    stepper.log.create(big, make_events(1, 1))
    assert stepper.log.get(ARN) == big and len(env.objects()) == 1
