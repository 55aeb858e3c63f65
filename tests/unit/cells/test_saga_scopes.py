"""Sagas, second review: redriven EXPRESS items, unfinished runs, Map scopes, concurrent compensates."""

from __future__ import annotations

from typing import Any

from stepflow.cells import CellRuntime, LogJournal
from stepflow.runtime import InMemoryLog
from tests.unit.cells.saga_support import Shop

ARN = "arn:aws:states:us-east-1:123456789012:execution:m:e"
ORDER: dict[str, Any] = {"sku": "a", "quantity": 2, "amount": 30}


def runtime(shop: Shop, *extra: Any) -> tuple[CellRuntime, InMemoryLog]:
    modules = shop.modules(*extra)
    log = InMemoryLog()
    return CellRuntime(modules.cells, modules.handlers, LogJournal(log)), log


def body(action: str, task_id: str, data: Any = None, **more: Any) -> dict[str, Any]:
    return {
        "resource": f"arn:aws:states:::stepflow:{action}",
        "input": ORDER if data is None else data,
        "execution_arn": ARN,
        "state_name": action.rsplit(":", 2)[-1],
        "task_id": task_id,
        **more,
    }


def test_a_redriven_express_item_compensates_what_it_did_before_the_redrive() -> None:
    shop = Shop()
    run, _log = runtime(shop)
    before = {**ORDER, "amount": 1}
    after = {**ORDER, "amount": 2}
    assert run(body("cell:charge-card:1", "t1", before, attempt_id="express/0/4/t1")).ok
    assert run(body("cell:charge-card:1", "t1", after, attempt_id="express/1/4/t1")).ok
    outcome = run(body("saga:compensate", "t2", attempt_id="express/1/4/t2"))
    assert outcome.ok, outcome
    assert shop.details == ["charge:1", "charge:2", "refund:c-2", "refund:c-1"]
    # another item's saga is its own
    assert run(body("saga:compensate", "t2", attempt_id="express/1/5/t2")).ok
    assert shop.calls.count("refund") == 2
