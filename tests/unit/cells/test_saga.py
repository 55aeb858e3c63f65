"""Sagas in memory: compensations registered once, run once each, newest first.

Every test counts the handler calls (``Shop.calls``), so it can tell once from twice.
"""

from __future__ import annotations

from typing import Any

import pytest
from stepflow.cells import Cell, CellContext
from stepflow.runtime import Message
from stepflow.testing import WorkflowEnvironment, execute

from tests.unit.cells.saga_support import (
    COMPENSATE,
    ChargeCard,
    Charged,
    Crash,
    Order,
    OrderError,
    Payments,
    Shop,
    cell_task,
    order_saga,
    task_outputs,
)

ORDER: dict[str, Any] = {"sku": "a", "quantity": 2, "amount": 30}
RESERVE = {"cell": "reserve-stock@1.0.0", "attempt": "t1", "effects": 1}


def test_a_failed_ship_refunds_then_releases_once_each_in_reverse_order() -> None:
    shop = Shop()
    shop.fail["ship"] = 1
    result = execute(order_saga(), ORDER, cells=shop.modules())
    assert result.status == "FAILED" and result.error == "OrderFailed", result.cause
    assert shop.calls == ["hold", "charge", "ship", "refund", "release"]
    (output,) = task_outputs(result.history, "Undo1")
    assert output == {
        "compensated": [
            {"cell": "charge-card@1.0.0", "attempt": "t2", "effects": 1},
            RESERVE,
        ]
    }


def test_a_saga_that_succeeds_compensates_nothing() -> None:
    shop = Shop()
    result = execute(order_saga(), ORDER, cells=shop.modules())
    assert result.status == "SUCCEEDED", result.cause
    assert shop.calls == ["hold", "charge", "ship"]


def test_compensating_twice_in_one_execution_runs_each_compensation_once() -> None:
    shop = Shop()
    shop.fail["ship"] = 1
    result = execute(order_saga(compensations=2), ORDER, cells=shop.modules())
    assert result.status == "FAILED", result.cause
    assert shop.calls == ["hold", "charge", "ship", "refund", "release"]
    assert len(task_outputs(result.history, "Undo1")[0]["compensated"]) == 2
    assert task_outputs(result.history, "Undo2") == [{"compensated": []}]


class ChargeThenFail(Cell[Order, Charged, OrderError, Payments]):
    """Charges the card, then fails with its business error: the charge must be refunded."""

    name = "charge-then-fail"

    def run(self, ctx: CellContext[Payments], data: Order) -> Charged:
        ctx.effect(ChargeCard(amount=data.amount))
        ctx.fail(OrderError(why="fraud suspected"))


def test_a_failed_cell_gets_its_performed_effects_undone() -> None:
    shop = Shop()
    definition = {
        "StartAt": "Charge",
        "States": {
            "Charge": cell_task(
                "charge-then-fail",
                "Done",
                Catch=[{"ErrorEquals": ["OrderError"], "ResultPath": "$.error", "Next": "Undo"}],
            ),
            "Done": {"Type": "Succeed"},
            "Undo": {"Type": "Task", "Resource": COMPENSATE, "End": True},
        },
    }
    result = execute(definition, ORDER, cells=shop.modules(ChargeThenFail))
    assert result.status == "SUCCEEDED", result.cause
    assert shop.details == ["charge:30", "refund:c-30"]
    assert result.result == {
        "compensated": [{"cell": "charge-then-fail@1.0.0", "attempt": "t1", "effects": 1}]
    }


def doubling(env: WorkflowEnvironment) -> list[str]:
    """Make the environment's queue deliver every message twice; the copies sent."""
    copies: list[str] = []
    send = env.bus.send

    def twice(message: Message, delay: int = 0) -> None:
        send(message, delay)
        copies.append(message.id)
        send(message, delay)

    env.bus.send = twice  # type: ignore[method-assign]
    return copies


def test_duplicate_deliveries_run_each_compensation_once() -> None:
    shop = Shop()
    shop.fail["ship"] = 1
    env = WorkflowEnvironment(cells=shop.modules())
    copies = doubling(env)
    arn = env.start(env.register(order_saga(compensations=2)), ORDER)
    env.run(arn)
    result = env.result(arn)
    assert result.status == "FAILED" and result.error == "OrderFailed", result.cause
    assert copies  # the queue did deliver duplicates
    assert shop.calls == ["hold", "charge", "ship", "refund", "release"]
    assert [len(o["compensated"]) for o in task_outputs(result.history, "Undo1")] == [2]
    assert task_outputs(result.history, "Undo2") == [{"compensated": []}]


def test_a_crash_in_the_middle_of_compensation_runs_each_once_in_reverse_order() -> None:
    shop = Shop()
    shop.fail["ship"] = 1
    shop.crash["release"] = 1  # the process dies in the second compensation
    env = WorkflowEnvironment(cells=shop.modules())
    arn = env.start(env.register(order_saga()), ORDER)
    with pytest.raises(Crash):
        env.run(arn)
    assert shop.calls == ["hold", "charge", "ship", "refund"]
    env.run(arn)  # the task message is delivered again
    result = env.result(arn)
    assert result.status == "FAILED" and result.error == "OrderFailed", result.cause
    assert shop.calls == ["hold", "charge", "ship", "refund", "release"]
    (output,) = task_outputs(result.history, "Undo1")
    assert output == {
        "compensated": [{"cell": "reserve-stock@1.0.0", "attempt": "t1", "effects": 1}]
    }


def test_a_retried_compensate_state_resumes_at_the_compensation_that_failed() -> None:
    shop = Shop()
    shop.fail["ship"] = 1
    shop.fail["release"] = 1
    result = execute(order_saga(retry=True), ORDER, cells=shop.modules())
    assert result.status == "FAILED" and result.error == "OrderFailed", result.cause
    assert shop.calls == ["hold", "charge", "ship", "refund", "release", "release"]
    failed = [e for e in result.history if e["type"] == "TaskFailed"]
    assert [e["taskFailedEventDetails"]["error"] for e in failed] == [
        "ShipUnavailable",
        "ReleaseUnavailable",
    ]
    (output,) = task_outputs(result.history, "Undo1")
    assert output == {
        "compensated": [{"cell": "reserve-stock@1.0.0", "attempt": "t1", "effects": 1}]
    }


@pytest.mark.parametrize("kind", ["EXPRESS", "STANDARD"])
def test_each_distributed_map_item_compensates_only_its_own_cells(kind: str) -> None:
    shop = Shop()
    shop.fail["ship:b"] = 1
    item = {
        "StartAt": "Charge",
        "States": {
            "Charge": cell_task("charge-card", "Ship"),
            "Ship": cell_task(
                "ship",
                "Ok",
                Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Undo"}],
            ),
            "Ok": {"Type": "Succeed"},
            "Undo": {"Type": "Task", "Resource": COMPENSATE, "End": True},
        },
    }
    processor = {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": kind}, **item}
    definition = {
        "StartAt": "M",
        "States": {"M": {"Type": "Map", "ItemProcessor": processor, "End": True}},
    }
    orders = [{"sku": sku, "amount": n} for n, sku in enumerate("abc", 1)]
    result = execute(definition, orders, cells=shop.modules())
    assert result.status == "SUCCEEDED", result.cause
    assert shop.calls.count("refund") == 1 and "refund:c-2" in shop.details
    assert len(result.result[1]["compensated"]) == 1
