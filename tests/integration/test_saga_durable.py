"""Sagas on the durable runtime: the DynamoDB log on moto, every message through the stepper Lambda.

The same order saga and counted handlers as tests/unit/cells/test_saga.py: the saga
record, the done-markers and the compensations' journal are DynamoDB items here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.runtime import Message
from stepflow.testing import WorkflowEnvironment, open_environment

from tests.unit.cells.saga_support import Crash, Shop, order_saga, task_outputs

pytest.importorskip("moto")
ORDER: dict[str, Any] = {"sku": "a", "quantity": 2, "amount": 30}
REFUND = {"cell": "charge-card@1.0.0", "attempt": "t2", "effects": 1}
RELEASE = {"cell": "reserve-stock@1.0.0", "attempt": "t1", "effects": 1}


@pytest.fixture
def shop() -> Shop:
    made = Shop()
    made.fail["ship"] = 1
    return made


@pytest.fixture
def env(shop: Shop) -> Iterator[WorkflowEnvironment]:
    with open_environment("moto", cells=shop.modules()) as made:
        yield made


def saga_items(env: WorkflowEnvironment, arn: str) -> list[str]:
    """The sort keys of the saga's items in the log table (``TK#saga#...``)."""
    client = env.log._client  # type: ignore[attr-defined]
    items = client.query(
        TableName="stepflow-testing",
        KeyConditionExpression="pk = :pk AND begins_with(sk, :sk)",
        ExpressionAttributeValues={":pk": {"S": f"EX#{arn}"}, ":sk": {"S": "TK#saga#"}},
    )["Items"]
    return sorted(item["sk"]["S"] for item in items)


def test_the_order_saga_compensates_once_each_in_reverse_order_under_duplicates(
    env: WorkflowEnvironment, shop: Shop
) -> None:
    copies: list[str] = []
    send = env.bus.send

    def twice(message: Message, delay: int = 0) -> None:
        send(message, delay)
        copies.append(message.id)
        send(message, delay)

    env.bus.send = twice  # type: ignore[method-assign]
    arn = env.start(env.register(order_saga(compensations=2)), ORDER)
    env.run(arn)
    result = env.result(arn)
    assert result.status == "FAILED" and result.error == "OrderFailed", result.cause
    assert copies
    assert shop.calls == ["hold", "charge", "ship", "refund", "release"]
    assert task_outputs(result.history, "Undo1") == [{"compensated": [REFUND, RELEASE]}]
    assert task_outputs(result.history, "Undo2") == [{"compensated": []}]
    assert saga_items(env, arn) == [
        "TK#saga#done#t1#cell",
        "TK#saga#done#t2#fx0",
        "TK#saga#entries",
    ]


def test_a_crash_in_the_middle_of_compensation_on_the_durable_path(
    env: WorkflowEnvironment, shop: Shop
) -> None:
    shop.crash["release"] = 1
    arn = env.start(env.register(order_saga()), ORDER)
    with pytest.raises(Crash):
        env.run(arn)
    assert shop.calls == ["hold", "charge", "ship", "refund"]
    env.run(arn)
    result = env.result(arn)
    assert result.status == "FAILED" and result.error == "OrderFailed", result.cause
    assert shop.calls == ["hold", "charge", "ship", "refund", "release"]
    assert task_outputs(result.history, "Undo1") == [{"compensated": [RELEASE]}]
