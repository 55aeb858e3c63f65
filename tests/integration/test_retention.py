"""Retention: finished executions' heads expire by TTL and the sweeper removes the rest.

On moto (in-process). moto does not run TTL deletions itself, so the test
deletes the head as DynamoDB's TTL would and hands the sweeper the stream record
DynamoDB would emit for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.asl import parse
from stepflow.runtime import InMemoryBus, Stepper, TaskOutcome

from tests.moto_env import offline_aws

boto3 = pytest.importorskip("boto3")

from stepflow.aws import DynamoDBLog, create_table, sweeper, topology  # noqa: E402
from stepflow.aws.settings import Settings  # noqa: E402
from stepflow.aws.wiring import build  # noqa: E402

TABLE = "stepflow-retention"
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:Keep"
DAY = 86_400
DEFINITION = {
    "StartAt": "Work",
    "States": {
        "Work": {"Type": "Task", "Resource": "arn:aws:lambda:::function:work", "Next": "Pause"},
        "Pause": {"Type": "Wait", "Seconds": 5, "Next": "Check"},
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.ok", "BooleanEquals": True, "Next": "Done"}],
            "Default": "Broken",
        },
        "Broken": {"Type": "Fail", "Error": "Broken"},
        "Done": {"Type": "Succeed"},
    },
}


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with offline_aws(monkeypatch):
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, TABLE)
        yield client


class Rig:
    """A stepper over DynamoDBLog (moto) whose single task returns ``self.answer``."""

    def __init__(self, client: Any, retention_seconds: int = 30 * DAY) -> None:
        self.client = client
        self.answer: dict[str, Any] = {"ok": False}
        self.bus = InMemoryBus(1_700_000_000.0)
        self.log = DynamoDBLog(TABLE, client=client, retention_seconds=retention_seconds)
        machine = parse(DEFINITION)
        self.stepper = Stepper(
            log=self.log,
            bus=self.bus,
            definitions=lambda _: machine,
            clock=lambda: self.bus.now,
            invoker=self.invoke,
        )

    def invoke(self, body: dict[str, Any]) -> TaskOutcome:
        if self.answer.get("boom"):
            return TaskOutcome.failed("Boom", "the task blew up")
        return TaskOutcome.succeeded(self.answer)

    def drain(self) -> None:
        for _ in range(1_000):
            message = self.bus.receive()
            if message is None:
                return
            self.stepper.handle(message)
            self.bus.ack(message)
        raise AssertionError("the bus did not drain")

    def finished(self, name: str, answer: dict[str, Any]) -> str:
        """Run an execution named ``name`` to its end with the task answering ``answer``."""
        self.answer = answer
        record = self.stepper.start_execution(state_machine_arn=SM, name=name, input={}, seed=1)
        self.drain()
        return record.execution_arn

    def expire(self, arn: str) -> None:
        """Delete the head, as DynamoDB's TTL process does."""
        key = {"pk": {"S": f"EX#{arn}"}, "sk": {"S": "HEAD"}}
        self.client.delete_item(TableName=TABLE, Key=key)

    def head(self, arn: str) -> dict[str, Any]:
        key = {"pk": {"S": f"EX#{arn}"}, "sk": {"S": "HEAD"}}
        return dict(self.client.get_item(TableName=TABLE, Key=key)["Item"])

    def partition(self, arn: str) -> list[str]:
        items = self.client.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"EX#{arn}"}},
        )["Items"]
        return [item["sk"]["S"] for item in items]


def ttl_removal(
    pk: str,
    sk: str = "HEAD",
    principal: str = "dynamodb.amazonaws.com",
    old: dict[str, Any] | None = None,
) -> Any:
    """The stream record DynamoDB writes when its TTL process deletes an item."""
    return {
        "eventID": "1",
        "eventName": "REMOVE",
        "eventSource": "aws:dynamodb",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
        "userIdentity": {"type": "Service", "principalId": principal},
        "dynamodb": {
            "Keys": {"pk": {"S": pk}, "sk": {"S": sk}},
            "SequenceNumber": "100",
            "SizeBytes": 10,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
            **({"OldImage": old} if old is not None else {}),
        },
    }


def test_a_running_execution_has_no_expiry_a_finished_one_expires_after_retention(
    dynamodb: Any,
) -> None:
    rig = Rig(dynamodb)
    arn = rig.stepper.start_execution(state_machine_arn=SM, name="a", input={}, seed=1)
    assert topology.TTL_ATTRIBUTE not in rig.head(arn.execution_arn)
    rig.drain()
    head = rig.head(arn.execution_arn)
    assert head["status"]["S"] == "FAILED"
    stop = float(head["stop_date"]["N"])
    assert int(head[topology.TTL_ATTRIBUTE]["N"]) == int(stop) + 30 * DAY


def test_a_redriven_execution_loses_its_expiry_and_gets_a_new_one_when_it_ends(
    dynamodb: Any,
) -> None:
    rig = Rig(dynamodb)
    arn = rig.finished("r", {"boom": True})
    assert rig.head(arn)["status"]["S"] == "FAILED"
    first = int(rig.head(arn)[topology.TTL_ATTRIBUTE]["N"])
    rig.bus.now += DAY
    rig.answer = {"ok": True}
    assert rig.stepper.redrive_execution(arn) is not None
    head = rig.head(arn)  # Work ran inline; the Wait holds it RUNNING
    assert head["status"]["S"] == "RUNNING" and topology.TTL_ATTRIBUTE not in head
    rig.drain()
    head = rig.head(arn)
    assert head["status"]["S"] == "SUCCEEDED"
    assert int(head[topology.TTL_ATTRIBUTE]["N"]) >= first + DAY


def test_the_sweeper_deletes_the_partition_of_an_expired_head_only(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = Rig(dynamodb)
    gone = rig.stepper.start_execution(state_machine_arn=SM, name="gone", input={}, seed=1)
    kept = rig.stepper.start_execution(state_machine_arn=SM, name="kept", input={}, seed=2)
    rig.drain()
    assert len(rig.partition(gone.execution_arn)) > 3  # head, history items, task lease
    rig.expire(gone.execution_arn)
    pk = f"EX#{gone.execution_arn}"
    monkeypatch.setenv(topology.TABLE_ENV_VAR, TABLE)
    # The sweeper's wiring, as build() makes it from the environment, on moto's client.
    monkeypatch.setattr(sweeper, "_wiring", build(clients={"dynamodb": dynamodb}))
    event = {
        "Records": [
            ttl_removal(pk),
            ttl_removal(pk),  # a duplicate delivery changes nothing
            ttl_removal(f"EX#{kept.execution_arn}", principal="someone"),  # a user's delete
            ttl_removal(f"EX#{kept.execution_arn}", sk="EV#000000000001"),
        ]
    }
    assert sweeper.handler(event, LambdaContext()) == {"batchItemFailures": []}
    assert rig.partition(gone.execution_arn) == []
    kept_items = rig.partition(kept.execution_arn)
    assert "HEAD" in kept_items and len(kept_items) > 3


def test_a_partition_whose_head_exists_is_not_purged(dynamodb: Any) -> None:
    rig = Rig(dynamodb)
    arn = rig.finished("back", {"ok": False})
    before = rig.partition(arn)
    assert rig.log.purge(arn) == 0
    assert rig.partition(arn) == before


def test_a_purge_pages_through_a_long_history_in_fenced_transactions(dynamodb: Any) -> None:
    arn = "arn:aws:states:us-east-1:123456789012:execution:Keep:long"
    for i in range(250):
        key = {"pk": {"S": f"EX#{arn}"}, "sk": {"S": f"EV#{i:012d}"}}
        dynamodb.put_item(TableName=TABLE, Item=key)
    calls: list[int] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(dynamodb, name)

        def transact_write_items(self, TransactItems: list[Any]) -> Any:  # noqa: N803
            assert "ConditionCheck" in TransactItems[0] and len(TransactItems) <= 100
            calls.append(len(TransactItems) - 1)
            return dynamodb.transact_write_items(TransactItems=TransactItems)

    log = DynamoDBLog(TABLE, client=Counting())
    assert log.purge(arn) == 250
    assert calls == [99, 99, 52]
    assert Rig(dynamodb).partition(arn) == []


def test_an_execution_started_again_during_a_purge_is_not_touched(dynamodb: Any) -> None:
    # GIVEN an expired execution whose head TTL deleted, its history still there
    rig = Rig(dynamodb)
    arn = rig.finished("again", {"ok": True})
    rig.expire(arn)
    leftovers = rig.partition(arn)

    # WHEN the same name starts again between the purge's read and its delete
    class Racing:
        def __getattr__(self, name: str) -> Any:
            return getattr(dynamodb, name)

        def query(self, **kwargs: Any) -> Any:
            page = dynamodb.query(**kwargs)
            head = {"pk": {"S": f"EX#{arn}"}, "sk": {"S": "HEAD"}, "seq": {"N": "1"}}
            dynamodb.put_item(TableName=TABLE, Item=head)
            return page

    # THEN the purge deletes nothing
    assert DynamoDBLog(TABLE, client=Racing()).purge(arn) == 0
    assert sorted(rig.partition(arn)) == sorted([*leftovers, "HEAD"])


def test_a_name_whose_execution_expired_can_be_started_again_before_the_sweep(
    dynamodb: Any,
) -> None:
    rig = Rig(dynamodb)
    arn = rig.finished("reuse", {"ok": True})
    rig.expire(arn)
    # the leftover history of the first run must not block (or leak into) the second
    second = rig.stepper.start_execution(
        state_machine_arn=SM, name="reuse", input={"again": True}, seed=2
    )
    assert second.execution_arn == arn
    rig.drain()
    record = rig.log.get(arn)
    assert record is not None and record.status == "SUCCEEDED" and record.input == {"again": True}
    history = rig.log.history(arn).events
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    assert sum(e["type"] == "ExecutionStarted" for e in history) == 1


def test_a_late_sweep_keeps_the_listing_entry_of_an_execution_started_since(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = Rig(dynamodb)
    arn = rig.finished("late", {"ok": True})
    expired = rig.head(arn)
    rig.expire(arn)
    monkeypatch.setenv(topology.TABLE_ENV_VAR, TABLE)
    monkeypatch.setattr(sweeper, "_wiring", build(clients={"dynamodb": dynamodb}))
    record = ttl_removal(f"EX#{arn}", old=expired)
    assert sweeper.handler({"Records": [record]}, LambdaContext()) == {"batchItemFailures": []}
    assert rig.partition(arn) == []
    # GIVEN a new execution of the name whose listing entry is in, its head not yet
    rig.bus.now += 10
    second = rig.stepper.start_execution(
        state_machine_arn=SM, name="late", input={"again": True}, seed=2
    )
    head = rig.head(arn)
    rig.expire(arn)
    # WHEN the TTL record is delivered again, late THEN the newer entry is kept
    assert sweeper.handler({"Records": [record]}, LambdaContext()) == {"batchItemFailures": []}
    assert rig.partition(arn) == ["LIST"]
    dynamodb.put_item(TableName=TABLE, Item=head)  # (the head's put, after all)
    listed, _ = rig.log.list_executions(SM)
    assert [r.execution_arn for r in listed] == [second.execution_arn]
    # AND without the expired image's start date, an entry of an execution started within
    # a retention is kept too; one that old is not
    rig.expire(arn)
    swept = sweeper.get_log()
    swept.clock = lambda: rig.bus.now
    bare = ttl_removal(f"EX#{arn}")
    assert sweeper.handler({"Records": [bare]}, LambdaContext()) == {"batchItemFailures": []}
    assert rig.partition(arn) == ["LIST"]
    rig.bus.now += swept.retention_seconds + 1
    assert sweeper.handler({"Records": [bare]}, LambdaContext()) == {"batchItemFailures": []}
    assert rig.partition(arn) == []


def test_retention_comes_from_the_environment_and_bad_values_are_refused() -> None:
    def retention(**env: str) -> int:
        return Settings.from_environ({"TABLE_NAME": TABLE, **env}).retention_seconds

    assert retention() == retention(STEPFLOW_RETENTION_DAYS=" ") == 90 * DAY
    week = {"STEPFLOW_RETENTION_DAYS": "7", "STEPFLOW_REDRIVE_WINDOW_SECONDS": str(3 * DAY)}
    assert retention(**week) == 7 * DAY
    for bad in ("0", "-3", "soon", "1.5"):
        with pytest.raises(ValueError, match="STEPFLOW_RETENTION_DAYS"):
            retention(STEPFLOW_RETENTION_DAYS=bad)


def test_the_redrive_window_must_end_before_a_finished_execution_is_purged() -> None:
    # AWS's 14-day window with a 7-day retention: a redrive could race the purge
    with pytest.raises(ValueError, match="STEPFLOW_REDRIVE_WINDOW_SECONDS"):
        Settings.from_environ({"TABLE_NAME": TABLE, "STEPFLOW_RETENTION_DAYS": "7"})
    with pytest.raises(ValueError, match="must be below the retention"):
        Settings.from_environ(
            {"TABLE_NAME": TABLE, "STEPFLOW_REDRIVE_WINDOW_SECONDS": str(90 * DAY)}
        )
    settings = Settings.from_environ({"TABLE_NAME": TABLE})
    assert settings.limits.redrive_window_seconds == 14 * DAY < settings.retention_seconds


class LambdaContext:
    """The attributes Powertools' logger reads from a Lambda context."""

    function_name = "sweeper"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:sweeper"
    aws_request_id = "req-1"
