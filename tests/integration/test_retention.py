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
from stepflow.runtime import InMemoryBus, Stepper

from tests.moto_env import offline_aws

boto3 = pytest.importorskip("boto3")

from stepflow.aws import DynamoDBLog, create_table, sweeper, topology  # noqa: E402

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

    def invoke(self, body: dict[str, Any]) -> tuple[bool, Any, str | None, str | None]:
        if self.answer.get("boom"):
            return False, None, "Boom", "the task blew up"
        return True, self.answer, None, None

    def drain(self) -> None:
        for _ in range(1_000):
            message = self.bus.receive()
            if message is None:
                return
            self.stepper.handle(message)
            self.bus.ack(message)
        raise AssertionError("the bus did not drain")

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


def ttl_removal(pk: str, sk: str = "HEAD", principal: str = "dynamodb.amazonaws.com") -> Any:
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
    rig.answer = {"boom": True}
    record = rig.stepper.start_execution(state_machine_arn=SM, name="r", input={}, seed=1)
    rig.drain()
    assert rig.head(record.execution_arn)["status"]["S"] == "FAILED"
    first = int(rig.head(record.execution_arn)[topology.TTL_ATTRIBUTE]["N"])
    rig.bus.now += DAY
    rig.answer = {"ok": True}
    assert rig.stepper.redrive_execution(record.execution_arn) is not None
    head = rig.head(record.execution_arn)  # Work ran inline; the Wait holds it RUNNING
    assert head["status"]["S"] == "RUNNING" and topology.TTL_ATTRIBUTE not in head
    rig.drain()
    head = rig.head(record.execution_arn)
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
    pk = f"EX#{gone.execution_arn}"
    dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": pk}, "sk": {"S": "HEAD"}})
    monkeypatch.setenv(topology.TABLE_ENV_VAR, TABLE)
    monkeypatch.setattr(sweeper, "_client", dynamodb)
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


def test_a_partition_whose_head_came_back_is_not_swept(dynamodb: Any) -> None:
    rig = Rig(dynamodb)
    record = rig.stepper.start_execution(state_machine_arn=SM, name="back", input={}, seed=1)
    rig.drain()
    before = rig.partition(record.execution_arn)
    assert sweeper.sweep_partition(dynamodb, TABLE, f"EX#{record.execution_arn}") == 0
    assert rig.partition(record.execution_arn) == before


def test_the_sweeper_pages_and_retries_unprocessed_deletions() -> None:
    class Flaky:
        """A client whose BatchWriteItem leaves the last deletion unprocessed once per call."""

        def __init__(self) -> None:
            self.items = [{"pk": {"S": "EX#x"}, "sk": {"S": f"EV#{i:012d}"}} for i in range(60)]
            self.calls = 0

        def get_item(self, **_: Any) -> dict[str, Any]:
            return {}

        def query(self, **kwargs: Any) -> dict[str, Any]:
            start = int(kwargs.get("ExclusiveStartKey", {}).get("n", 0))
            page = self.items[start : start + 40]
            more = {"LastEvaluatedKey": {"n": start + 40}} if start + 40 < len(self.items) else {}
            return {"Items": page, **more}

        def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
            self.calls += 1
            (requests,) = RequestItems.values()
            assert len(requests) <= 25
            if len(requests) > 1:
                return {"UnprocessedItems": {"t": requests[-1:]}}
            return {}

    client = Flaky()
    pauses: list[float] = []
    assert sweeper.sweep_partition(client, "t", "EX#x", sleep=pauses.append) == 60
    # pages of 40 and 20 -> batches of 25, 15 and 20, each retried once for its last deletion
    assert (client.calls, len(pauses)) == (6, 3)


def test_retention_comes_from_the_environment_and_bad_values_are_refused() -> None:
    assert topology.retention_seconds({}) == 90 * DAY
    assert topology.retention_seconds({"STEPFLOW_RETENTION_DAYS": "7"}) == 7 * DAY
    for bad in ("0", "-3", "soon", "1.5"):
        with pytest.raises(ValueError, match="STEPFLOW_RETENTION_DAYS"):
            topology.retention_seconds({"STEPFLOW_RETENTION_DAYS": bad})


class LambdaContext:
    """The attributes Powertools' logger reads from a Lambda context."""

    function_name = "sweeper"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:sweeper"
    aws_request_id = "req-1"
