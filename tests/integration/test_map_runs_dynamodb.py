"""Map runs on the DynamoDB log (moto): the same coordinator, counted writes, listing by run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.runtime import InMemoryBus
from stepflow.runtime.map_run_state import PAGE_SIZE

from tests.moto_env import offline_aws
from tests.unit.map_run_support import (
    KEY,
    MAP_RUN_ARN,
    MeteredLog,
    drain,
    finished,
    start_message,
    stepper,
)
from tests.unit.test_map_run_cost import cancel_during_the_first_child

pytest.importorskip("moto")
boto3 = pytest.importorskip("boto3")

from stepflow.aws import DynamoDBLog, create_table  # noqa: E402

TABLE = "stepflow-map-runs"


@pytest.fixture
def log() -> Iterator[MeteredLog]:
    with pytest.MonkeyPatch.context() as env, offline_aws(env):
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, TABLE)
        yield MeteredLog(DynamoDBLog(TABLE, client=client))


def run(log: MeteredLog, items: list[Any], **fields: Any) -> list[dict[str, Any]]:
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    bus.send(start_message(items, **fields))
    return finished(drain(s, bus))


def test_five_items_on_dynamodb(log: MeteredLog) -> None:
    [done] = run(log, [1, 2, 3, 4, 5], max_concurrency=2)
    assert done["output"] == [{"r": 2 * n} for n in range(1, 6)]
    listed, token = log.list_executions(MAP_RUN_ARN)
    assert token is None and len(listed) == 5  # ListExecutions(mapRunArn): the run's children
    assert all(r.attributes["map_run_arn"] == MAP_RUN_ARN for r in listed)
    parent_machine = "arn:aws:states:us-east-1:123456789012:stateMachine:Batch"
    assert log.list_executions(parent_machine) == ([], None)  # neither children nor run records


def test_many_items_on_dynamodb_cost_o_1_writes_per_item(log: MeteredLog) -> None:
    # 60, not 1,000: moto deep-copies the whole table on every transaction, so a test's
    # time grows with the square of the items on moto (1,000 take minutes); bench/ runs
    # 1,000 and 10,000 on the same path.
    items = list(range(60))
    [done] = run(log, items)
    assert done["output"] == [{"r": 2 * n} for n in items]
    total = sum(log.writes.values())
    assert total / len(items) < 6
    assert log.writes[KEY] <= 2 * (len(items) // 10) + 10
    pages = [k for k in log.writes if "#page/" in k]
    assert len(pages) == -(-len(items) // PAGE_SIZE) and all(log.writes[k] == 1 for k in pages)


def test_a_run_cancelled_during_a_childs_lambda_starts_no_more_on_dynamodb(
    log: MeteredLog,
) -> None:
    # the hostile review's stale run head (see tests/unit/test_map_run_cost.py)
    calls = cancel_during_the_first_child(log)
    assert calls[repr(0)] == 1
    assert [n for n in range(1, 6) if calls[repr(n)]] == []
