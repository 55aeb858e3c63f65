"""``DynamoDBLog.create`` of a record without events: one conditional PutItem, no transaction.

A map run creates one such record per EXPRESS item result (and per page); a
one-item transaction costs twice the write units on DynamoDB and, on moto
(``stepflow local``), a copy of the whole table per item.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.runtime import ExecutionRecord
from stepflow.runtime.ports import ExecutionAlreadyExistsError

from tests.moto_env import offline_aws

pytest.importorskip("moto")
boto3 = pytest.importorskip("boto3")

from stepflow.aws import DynamoDBLog, create_table  # noqa: E402

TABLE = "stepflow-log"
ARN = "arn:aws:states:us-east-1:123456789012:mapRun:m/l:r#xr/7"


@pytest.fixture
def counted() -> Iterator[tuple[DynamoDBLog, Counter[str]]]:
    """A log on moto whose client counts the operations it sends."""
    calls: Counter[str] = Counter()
    with pytest.MonkeyPatch.context() as env, offline_aws(env):
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, TABLE)

        def count(model: Any, **_: Any) -> None:
            calls[model.name] += 1

        client.meta.events.register("before-call.dynamodb.*", count)
        yield DynamoDBLog(TABLE, client=client), calls


def record(output: Any, status: str = "SUCCEEDED") -> ExecutionRecord:
    """A result record as a map run writes it (no events)."""
    return ExecutionRecord(
        execution_arn=ARN,
        state_machine_arn="",
        name="7",
        input=None,
        status=status,
        seq=0,
        state={"output": output},
        start_date=1.0,
        stop_date=2.0,
        attributes={"listed_under": ""},
    )


def test_create_without_events_is_one_put_item(
    counted: tuple[DynamoDBLog, Counter[str]],
) -> None:
    log, calls = counted
    log.create(record({"id": 7}), [])
    assert calls == Counter({"PutItem": 1})
    stored = log.get(ARN)
    assert stored is not None and stored.state == {"output": {"id": 7}}
    assert log.history(ARN).events == []


def test_second_create_raises_with_the_existing_record_and_changes_nothing(
    counted: tuple[DynamoDBLog, Counter[str]],
) -> None:
    log, calls = counted
    log.create(record({"id": 7}), [])
    with pytest.raises(ExecutionAlreadyExistsError) as raised:
        log.create(record({"id": "other"}, status="FAILED"), [])
    assert raised.value.existing.state == {"output": {"id": 7}}
    assert raised.value.existing.status == "SUCCEEDED"
    assert calls["TransactWriteItems"] == 0
    stored = log.get(ARN)
    assert stored is not None and stored.status == "SUCCEEDED"
