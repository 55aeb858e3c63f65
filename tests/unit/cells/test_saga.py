"""Sagas in memory: compensations registered once, run once each, newest first.

Every test counts the handler calls (``Shop.calls``), so it can tell once from twice.
"""

from __future__ import annotations

from typing import Any

from stepflow.testing import execute

from tests.unit.cells.saga_support import Shop, order_saga, task_outputs

ORDER: dict[str, Any] = {"sku": "a", "quantity": 2, "amount": 30}


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
            {"cell": "reserve-stock@1.0.0", "attempt": "t1", "effects": 1},
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
