"""Sagas, second review: EXPRESS redrives, unfinished runs, Map scopes, concurrent compensates."""

from __future__ import annotations

import base64
import threading
import time
from typing import Annotated, Any

import pytest
from pydantic import Field
from stepflow.cells import (
    Cell,
    CellContext,
    CellRuntime,
    EffectCall,
    LogJournal,
    saga,
    saga_log,
)
from stepflow.cells.queues import envelope
from stepflow.runtime import InMemoryLog, Message
from stepflow.runtime.leases import LeaseLog, TaskLease
from stepflow.testing import execute
from stepflow.worker import CellHandler
from stepflow.worker.context import TaskContext, TaskFailure

from tests.unit.cells.saga_support import (
    ARN,
    COMPENSATE,
    ORDER,
    ChargeCard,
    Charged,
    Crash,
    Done,
    Order,
    OrderError,
    RefundCard,
    ShipParcel,
    Shop,
    body,
)


def runtime(shop: Shop, *extra: Any) -> tuple[CellRuntime, InMemoryLog]:
    modules = shop.modules(*extra)
    log = InMemoryLog()
    return CellRuntime(modules.cells, modules.handlers, LogJournal(log)), log


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


Effects = Annotated[ChargeCard | ShipParcel, Field(discriminator="kind")]


class ChargeThenShip(Cell[Order, Charged, OrderError, Effects]):
    """Charges, then ships: a crash in the shipping leaves the charge performed."""

    name = "charge-ship"
    version = "1.0.0"

    def run(self, ctx: CellContext[Effects], data: Order) -> Charged:
        charge = ctx.effect(ChargeCard(amount=data.amount))
        ctx.effect(ShipParcel(sku=data.sku))
        return Charged(charge_id=charge.charge_id)


def orphaned_charge(log: LeaseLog) -> Shop:
    """Attempt t1 charges, then its process dies and it is never run again; t2 compensates."""
    shop = Shop()
    shop.crash["ship"] = 1
    modules = shop.modules(ChargeThenShip)
    run = CellRuntime(modules.cells, modules.handlers, LogJournal(log))
    with pytest.raises(Crash):
        run(body("cell:charge-ship:1", "t1"))
    outcome = run(body("saga:compensate", "t2"))
    assert outcome.ok, outcome
    assert outcome.output == {
        "compensated": [{"cell": "charge-ship@1.0.0", "attempt": "t1", "effects": 1}]
    }
    assert run(body("saga:compensate", "t3")).output == {"compensated": []}
    return shop


def test_the_effects_of_a_run_that_never_finished_are_compensated() -> None:
    shop = orphaned_charge(InMemoryLog())
    assert shop.calls == ["charge", "refund"]


def test_a_full_saga_refuses_a_compensable_effect_before_it_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(saga_log, "MAX_ENTRIES", 1)
    shop = Shop()
    run, _log = runtime(shop)
    assert run(body("cell:charge-card:1", "t1", {**ORDER, "amount": 1})).ok
    refused = run(body("cell:charge-card:1", "t2", {**ORDER, "amount": 2}))
    assert not refused.ok and refused.error == "StepFlow.Saga.LimitExceeded", refused
    assert shop.calls == ["charge"]  # the second charge never ran
    assert run(body("saga:compensate", "t3")).ok
    assert shop.details == ["charge:1", "refund:c-1"]


def test_an_effect_that_happened_is_registered_even_past_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop = Shop()
    run, log = runtime(shop)
    assert run(body("cell:charge-card:1", "t1", {**ORDER, "amount": 1})).ok
    # another writer fills the record between the room check and the registration
    real = saga_log.SagaLog.room

    def room_then_fill(self: saga_log.SagaLog) -> None:
        real(self)
        monkeypatch.setattr(saga_log, "MAX_ENTRIES", 1)

    monkeypatch.setattr(saga_log.SagaLog, "room", room_then_fill)
    assert run(body("cell:charge-card:1", "t2", {**ORDER, "amount": 2})).ok
    assert len(saga_log.SagaLog(log, ARN).entries()) == 2
    assert run(body("saga:compensate", "t3")).ok
    assert shop.details == ["charge:1", "charge:2", "refund:c-2", "refund:c-1"]


def task(name: str, **more: Any) -> dict[str, Any]:
    resource = f"arn:aws:states:::stepflow:cell:{name}:1"
    return {"Type": "Task", "Resource": resource, "ResultPath": None, **more}


CATCH = [{"ErrorEquals": ["States.ALL"], "Next": "Undo", "ResultPath": "$.error"}]
ITERATION = {
    "StartAt": "Reserve",
    "States": {
        "Reserve": task("reserve-stock", Next="Ship"),
        "Ship": task("ship", End=True, Catch=CATCH),
        "Undo": {"Type": "Task", "Resource": COMPENSATE, "ResultPath": "$.undo", "End": True},
    },
}


def map_saga(concurrency: int, *, undo_after: bool = False) -> dict[str, Any]:
    """Reserve then ship each item; a failed ship compensates in its iteration."""
    states: dict[str, Any] = {
        "Items": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrency": concurrency,
            "ItemProcessor": ITERATION,
            "ResultPath": "$.items",
            "End": not undo_after,
        }
    }
    if undo_after:
        states["Items"]["Next"] = "UndoAll"
        states["UndoAll"] = {"Type": "Task", "Resource": COMPENSATE, "End": True}
    return {"StartAt": "Items", "States": states}


ITEMS = {"items": [{"sku": "x"}, {"sku": "y"}, {"sku": "z"}]}


@pytest.mark.parametrize("concurrency", [0, 1])
def test_a_map_iteration_compensates_only_its_own_cells(concurrency: int) -> None:
    shop = Shop()
    shop.fail["ship:z"] = 1
    result = execute(map_saga(concurrency), ITEMS, cells=shop.modules())
    assert result.status == "SUCCEEDED", result.cause
    assert [d for d in shop.details if d.startswith("release")] == ["release:h-z"]
    assert shop.calls.count("release") == 1


def test_a_compensate_after_the_map_undoes_every_iteration_not_undone_yet() -> None:
    shop = Shop()
    shop.fail["ship:z"] = 1
    result = execute(map_saga(1, undo_after=True), ITEMS, cells=shop.modules())
    assert result.status == "SUCCEEDED", result.cause
    releases = [d for d in shop.details if d.startswith("release")]
    assert releases == ["release:h-z", "release:h-y", "release:h-x"]


def test_parallel_branches_compensate_their_own_and_the_top_level_all() -> None:
    shop = Shop()
    shop.fail["ship"] = 1
    branch = {"StartAt": "Reserve", "States": ITERATION["States"]}
    definition = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [branch, {"StartAt": "Charge", "States": {
                    "Charge": task("charge-card", End=True)}}],
                "ResultPath": None,
                "Next": "UndoAll",
            },
            "UndoAll": {"Type": "Task", "Resource": COMPENSATE, "End": True},
        },
    }  # fmt: skip
    result = execute(definition, ORDER, cells=shop.modules())
    assert result.status == "SUCCEEDED", result.cause
    assert shop.calls == ["hold", "charge", "ship", "release", "refund"] or shop.calls == [
        "charge", "hold", "ship", "release", "refund"
    ]  # fmt: skip
    assert shop.calls.count("release") == 1 and shop.calls.count("refund") == 1


def concurrent_compensates(log: LeaseLog) -> Shop:
    """c1 claims the refund and dies in it; c2 runs meanwhile: busy, then c1 again, then c2."""
    shop = Shop()
    modules = shop.modules()
    run = CellRuntime(modules.cells, modules.handlers, LogJournal(log))
    assert run(body("cell:reserve-stock:1", "t1")).ok
    assert run(body("cell:charge-card:1", "t2")).ok
    shop.crash["refund"] = 1
    with pytest.raises(Crash):
        run(body("saga:compensate", "c1"))
    busy = run(body("saga:compensate", "c2"))
    assert not busy.ok and busy.error == "StepFlow.Saga.Busy", busy
    assert "c1" in (busy.cause or "")
    assert shop.calls == ["hold", "charge"]  # c2 ran nothing
    first = run(body("saga:compensate", "c1"))  # c1 delivered again: it holds the claim
    assert first.ok and [e["cell"] for e in first.output["compensated"]] == [
        "charge-card@1.0.0",
        "reserve-stock@1.0.0",
    ]
    assert run(body("saga:compensate", "c2")).output == {"compensated": []}
    assert shop.calls == ["hold", "charge", "refund", "release"]
    return shop


def test_two_compensate_tasks_at_once_run_each_compensation_once() -> None:
    concurrent_compensates(InMemoryLog())


def claim_taken_over(log: InMemoryLog, monkeypatch: pytest.MonkeyPatch) -> None:
    """A compensate that crashed holding its claim; once the claim ran out, another takes over."""
    shop = Shop()
    modules = shop.modules()
    run = CellRuntime(modules.cells, modules.handlers, LogJournal(log))
    assert run(body("cell:charge-card:1", "t1")).ok
    shop.crash["refund"] = 1
    with pytest.raises(Crash):
        run(body("saga:compensate", "c1", timeout_seconds=30))
    now = time.time()
    monkeypatch.setattr(saga.time, "time", lambda: now + 31)
    outcome = run(body("saga:compensate", "c2"))
    assert outcome.ok and len(outcome.output["compensated"]) == 1
    assert shop.calls == ["charge", "refund"]


def test_a_claim_that_ran_out_is_taken_over(monkeypatch: pytest.MonkeyPatch) -> None:
    claim_taken_over(InMemoryLog(), monkeypatch)


def failed_claim_given_up(log: InMemoryLog) -> None:
    """A compensation that failed gives its claim up: the Retry's new attempt runs it at once."""
    shop = Shop()
    modules = shop.modules()
    run = CellRuntime(modules.cells, modules.handlers, LogJournal(log))
    assert run(body("cell:charge-card:1", "t1")).ok
    shop.fail["refund"] = 1
    failed = run(body("saga:compensate", "c1"))
    assert not failed.ok and failed.error == "RefundUnavailable"
    assert run(body("saga:compensate", "c2")).ok  # the Retry: a new attempt
    assert shop.calls == ["charge", "refund", "refund"]


def test_a_failed_compensation_gives_its_claim_up_for_the_retry() -> None:
    failed_claim_given_up(InMemoryLog())


def worker_call(handler: CellHandler, action: str, task_id: str, *, lost: bool = False) -> Any:
    """Run ``action`` as the worker does for delivery 1 of attempt ``task_id``."""
    message = Message(ARN, task_id, "task", body(action, task_id))
    location = base64.urlsafe_b64encode(ARN.encode()).decode().rstrip("=")
    context = TaskContext(
        token=f"{location}.{task_id}.sig.1.sig",
        idempotency_key=task_id,
        activity_arn="arn:aws:states:us-east-1:123456789012:activity:stepflow-cells-q",
        worker_name="w",
    )
    if lost:
        context.lost.set()
    return handler(envelope(message), context)


def test_a_worker_that_lost_its_lease_performs_no_compensation() -> None:
    shop = Shop()
    log = InMemoryLog()
    for task_id in ("t1", "t2", "t3"):  # each attempt's lease names delivery 1
        log.put_lease(TaskLease(ARN, task_id, version=1, delivery=1))
    handler = CellHandler(shop.modules(), log)
    assert worker_call(handler, "cell:charge-card:1", "t1") == {"charge_id": "c-30"}
    with pytest.raises(TaskFailure, match="LeaseLost"):
        worker_call(handler, "saga:compensate", "t2", lost=True)
    assert shop.calls == ["charge"]
    worker_call(handler, "saga:compensate", "t3")  # a live delivery: the refund, once
    assert shop.calls == ["charge", "refund"]


def test_a_cell_that_finishes_after_its_frame_was_compensated_is_undone_at_once() -> None:
    shop = Shop()
    run, _log = runtime(shop)
    # t3 (charge) and t4 (reserve) run in a Parallel's branch /2 that was aborted; the
    # Catch's compensate (t5, top level) ran before they finished
    assert run(body("saga:compensate", "t5")).output == {"compensated": []}
    charged = run(body("cell:charge-card:1", "t3", frame="/2"))
    reserved = run(body("cell:reserve-stock:1", "t4", frame="/2/6"))
    assert charged.ok and reserved.ok, (charged, reserved)
    assert shop.calls == ["charge", "refund", "hold", "release"]
    # a cell scheduled after the compensate is not: a later compensate undoes it
    assert run(body("cell:charge-card:1", "t8", {**ORDER, "amount": 9})).ok
    assert shop.calls[-1] == "charge"
    later = run(body("saga:compensate", "t9"))
    assert later.ok and [e["attempt"] for e in later.output["compensated"]] == ["t8"]
    assert shop.calls == ["charge", "refund", "hold", "release", "charge", "refund"]


def test_a_late_cell_of_another_frame_is_left_for_its_own_compensate() -> None:
    shop = Shop()
    run, _log = runtime(shop)
    assert run(body("saga:compensate", "t5", frame="/1")).output == {"compensated": []}
    assert run(body("cell:charge-card:1", "t3", frame="/2")).ok
    assert shop.calls == ["charge"]
    assert run(body("saga:compensate", "t6")).ok
    assert shop.calls == ["charge", "refund"]


def test_a_compensate_task_running_while_another_is_in_a_refund_runs_nothing() -> None:
    shop = Shop()
    modules = shop.modules()
    entered, other_done = threading.Event(), threading.Event()

    def slow_refund(effect: RefundCard, call: EffectCall) -> Done:
        entered.set()
        other_done.wait(10)
        return shop.refund(effect, call)

    modules.handlers.register(RefundCard, slow_refund)
    run = CellRuntime(modules.cells, modules.handlers, LogJournal(InMemoryLog()))
    assert run(body("cell:charge-card:1", "t1")).ok
    outcomes: list[Any] = []
    first = threading.Thread(target=lambda: outcomes.append(run(body("saga:compensate", "t2"))))
    first.start()
    assert entered.wait(10)
    second = run(body("saga:compensate", "t3"))
    other_done.set()
    first.join(10)
    assert not second.ok and second.error == "StepFlow.Saga.Busy"
    assert outcomes[0].ok and len(outcomes[0].output["compensated"]) == 1
    assert shop.calls == ["charge", "refund"]
