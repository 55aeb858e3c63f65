"""The order saga example (examples/saga), in memory through ``execute(..., cells=...)``.

Every service call is counted (``SERVICES.calls``): each effect happens exactly
once, a replay or a duplicate delivery makes no call, and when shipping fails
the refund and the release run exactly once each, newest first. The same
example runs through boto3 against ``stepflow local`` in
tests/e2e/test_local_saga.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from stepflow.cells import CellModules, load_modules
from stepflow.cli import main
from stepflow.runtime import Message, Stepper
from stepflow.testing import WorkflowEnvironment, execute
from stepflow.testing.delivery import handle_batch

SAGA = Path(__file__).resolve().parents[3] / "examples" / "saga"
DEFINITION = json.loads((SAGA / "order-saga.asl.json").read_text())
ORDER = json.loads((SAGA / "order.input.json").read_text())
UNSHIPPABLE = json.loads((SAGA / "order-unshippable.input.json").read_text())
FORWARD = ["inventory.hold", "payments.charge", "shipping.create"]


def example() -> tuple[CellModules, ModuleType]:
    """The example's cells freshly loaded (new services), and the module they live in."""
    modules = load_modules([str(SAGA / "cells.py")])
    return modules, sys.modules[modules.cells.resolve("reserve-stock").__module__]


def test_the_example_loads_three_cells_and_five_handlers() -> None:
    modules, _ = example()
    assert modules.cells.keys() == ["charge-card@1.0.0", "reserve-stock@1.0.0", "ship@1.0.0"]
    handled = sorted(kind.__name__ for kind in modules.handlers.handlers)
    assert handled == ["ChargeCard", "CreateShipment", "HoldStock", "RefundCharge", "ReleaseStock"]


def test_an_order_is_reserved_charged_and_shipped_each_once() -> None:
    modules, cells = example()
    result = execute(DEFINITION, ORDER, cells=modules)
    assert result.status == "SUCCEEDED", result.cause
    output = json.loads(result.output or "{}")
    assert output["order_id"] == "ord-2001" and output["charged_cents"] == 2 * 1250 + 800
    assert output["tracking_number"].startswith("trk-")
    assert cells.SERVICES.operations() == FORWARD
    assert cells.SERVICES.stock["book"] == 98 and cells.SERVICES.stock["mug"] == 49
    assert len(cells.SERVICES.charges) == 1 and not cells.SERVICES.refunds
    tokens = [call.token for call in cells.SERVICES.calls]
    assert len(set(tokens)) == 3  # one idempotency key per effect


def test_duplicate_deliveries_perform_each_effect_once() -> None:
    modules, cells = example()

    def twice(stepper: Stepper, batch: list[Message]) -> list[tuple[Message, Exception | None]]:
        handle_batch(stepper, batch)
        return handle_batch(stepper, batch)

    env = WorkflowEnvironment(cells=modules, deliver=twice)
    arn = env.start(DEFINITION, ORDER, name="twice")
    env.run(arn)
    assert env.describe(arn)["status"] == "SUCCEEDED"
    assert cells.SERVICES.operations() == FORWARD


def test_an_unshippable_order_fails_shipping_once_and_is_caught() -> None:
    modules, cells = example()
    result = execute(DEFINITION, UNSHIPPABLE, cells=modules)
    assert cells.SERVICES.operations()[:3] == FORWARD
    ship = [e for e in result.history if e["type"] == "TaskFailed"]
    assert ship and ship[0]["taskFailedEventDetails"]["error"] == "ShippingFailed"
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in result.history if "StateEntered" in e["type"]
    ]
    assert entered[:4] == ["ReserveStock", "ChargeCard", "Ship", "Compensate"]


DURABLE = pytest.mark.parametrize("durable", [False, "moto"], ids=["memory", "moto"])


@DURABLE
def test_an_unshippable_order_is_refunded_then_released_exactly_once(durable: bool | str) -> None:
    modules, cells = example()
    result = execute(DEFINITION, UNSHIPPABLE, cells=modules, durable=durable)
    assert result.status == "FAILED" and result.error == "OrderFailed", result.cause
    assert "no courier serves AQ" in (result.cause or "")
    assert cells.SERVICES.operations() == [*FORWARD, "payments.refund", "inventory.release"]
    assert cells.SERVICES.stock == {"book": 100, "lamp": 10, "mug": 50, "poster": 0}
    (charge,) = cells.SERVICES.charges
    assert list(cells.SERVICES.refunds.values()) == [charge]
    assert not cells.SERVICES.holds


@DURABLE
def test_a_declined_card_releases_the_stock_and_refunds_nothing(durable: bool | str) -> None:
    modules, cells = example()
    result = execute(DEFINITION, {**ORDER, "card": "tok_declined"}, cells=modules, durable=durable)
    assert result.status == "FAILED" and result.error == "OrderFailed", result.cause
    assert cells.SERVICES.operations() == ["inventory.hold", "payments.charge", "inventory.release"]
    assert cells.SERVICES.stock["book"] == 100


def test_an_order_out_of_stock_fails_with_nothing_charged_or_undone() -> None:
    modules, cells = example()
    order = {**ORDER, "lines": [{"sku": "poster", "quantity": 1, "price_cents": 500}]}
    result = execute(DEFINITION, order, cells=modules)
    assert result.status == "FAILED" and result.error == "OutOfStock"
    assert json.loads(result.cause or "{}") == {"missing": ["poster"]}
    assert cells.SERVICES.operations() == ["inventory.hold"]


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"lines": [{"sku": "book", "quantity": "two", "price_cents": 1}]}, "quantity"),
        ({"lines": []}, "lines"),
        ({"lines": [{"sku": "book", "quantity": 1, "price_cents": 1}] * 101}, "lines"),
        ({"lines": [{"sku": "book", "quantity": 1, "price_cents": 1, "extra": True}]}, "extra"),
        ({"order_id": "x" * 10_000}, "order_id"),
    ],
)
def test_hostile_orders_are_refused_before_any_effect(change: dict[str, Any], where: str) -> None:
    modules, cells = example()
    result = execute(DEFINITION, {**ORDER, **change}, cells=modules)
    assert result.status == "FAILED" and result.error == "StepFlow.Cell.InvalidInput"
    assert where in (result.cause or "")
    assert cells.SERVICES.operations() == []


@pytest.mark.parametrize(
    "address",
    [
        {"name": "A", "city": "B", "country": "gb"},
        {"name": "A", "city": "B", "country": "GB", "floor": 3},
        "nested",
    ],
)
def test_a_hostile_address_is_refused_by_ship_before_its_effect(address: Any) -> None:
    modules, cells = example()
    if address == "nested":
        for _ in range(200):
            address = {"name": address}
    result = execute(DEFINITION, {**ORDER, "address": address}, cells=modules)
    assert result.status == "FAILED"
    failed = [e["taskFailedEventDetails"] for e in result.history if e["type"] == "TaskFailed"]
    assert failed[0]["error"] == "StepFlow.Cell.InvalidInput"
    assert "address" in failed[0]["cause"]
    assert cells.SERVICES.operations()[:2] == ["inventory.hold", "payments.charge"]
    assert "shipping.create" not in cells.SERVICES.operations()


def test_two_executions_of_the_same_order_are_two_sets_of_effects() -> None:
    modules, cells = example()
    env = WorkflowEnvironment(cells=modules)
    machine = env.register(DEFINITION, "order-saga")
    first = env.start(machine, ORDER, name="first")
    second = env.start(machine, ORDER, name="second")
    env.run(first)
    env.run(second)
    assert env.describe(first)["status"] == env.describe(second)["status"] == "SUCCEEDED"
    assert sorted(cells.SERVICES.operations()) == sorted(FORWARD * 2)
    assert len({call.token for call in cells.SERVICES.calls}) == 6


def test_the_saga_runs_durably_on_moto_through_the_stepper_lambda() -> None:
    modules, cells = example()
    result = execute(DEFINITION, ORDER, cells=modules, durable="moto")
    assert result.status == "SUCCEEDED", result.cause
    assert cells.SERVICES.operations() == FORWARD


# --- stepflow run --cells -------------------------------------------------------------------


def test_stepflow_run_with_cells_runs_the_example(capsys: Any) -> None:
    argv = ["run", str(SAGA / "order-saga.asl.json"), "--input", f"@{SAGA / 'order.input.json'}"]
    code = main([*argv, "--cells", str(SAGA / "cells.py"), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert json.loads(out)["result"]["charged_cents"] == 3300


def test_stepflow_run_without_cells_fails_the_cell_task_clearly(capsys: Any) -> None:
    argv = ["run", str(SAGA / "order-saga.asl.json"), "--input", f"@{SAGA / 'order.input.json'}"]
    assert main([*argv, "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["error"] == "StepFlow.Cell.NotFound"
    assert "--cells" in result["cause"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (None, "No such file"),
        ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
        ("def broken(:\n", "SyntaxError"),
    ],
)
def test_stepflow_run_with_cells_that_cannot_load_exits_2(
    tmp_path: Path, capsys: Any, source: str | None, message: str
) -> None:
    module = tmp_path / "bad_cells.py"
    if source is not None:
        module.write_text(source)
    code = main(["run", str(SAGA / "order-saga.asl.json"), "--cells", str(module)])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot load --cells" in err and message in err


def test_stepflow_run_with_an_empty_cells_list_exits_2(capsys: Any) -> None:
    assert main(["run", str(SAGA / "order-saga.asl.json"), "--cells", " , "]) == 2
    assert "at least one module" in capsys.readouterr().err


# --- crashes: after an effect is recorded, and between performing and recording -------------


class Crash(BaseException):
    """The process dying (no ``except Exception`` catches it)."""


def crash_once(env: WorkflowEnvironment, when: str) -> list[str]:
    """Make the stepper die once around shipping's effect: ``after`` its record, or ``before``.

    Returns the list the crash is noted in; the environment's queue delivers the batch again.
    """
    journal = env.cell_runtime.journal
    crashed: list[str] = []

    class Dying:
        log = journal.log  # type: ignore[attr-defined]  # the saga's records live there too

        def recorded(self, key: Any) -> Any:
            return journal.recorded(key)

        def record(self, key: Any, record: Any) -> Any:
            if record.effect == "CreateShipment" and not crashed:
                crashed.append(when)
                if when == "before":
                    raise Crash
                journal.record(key, record)
                raise Crash
            return journal.record(key, record)

    env.cell_runtime.journal = Dying()
    return crashed


def redelivering(stepper: Stepper, batch: list[Message]) -> list[tuple[Message, Exception | None]]:
    """A queue: a batch whose stepper died is delivered again."""
    try:
        return handle_batch(stepper, batch)
    except Crash:
        return [(message, None) for message in batch]


def test_a_crash_after_shipping_is_recorded_replays_it_without_a_second_call() -> None:
    modules, cells = example()
    env = WorkflowEnvironment(cells=modules, deliver=redelivering)
    crashed = crash_once(env, "after")
    arn = env.start(DEFINITION, ORDER, name="crash-after")
    env.run(arn)
    assert crashed == ["after"]
    assert env.describe(arn)["status"] == "SUCCEEDED"
    assert cells.SERVICES.operations() == FORWARD  # shipping called once, replayed after
    output = json.loads(env.describe(arn)["output"])
    assert output["tracking_number"] in cells.SERVICES.shipments


def test_a_crash_before_shipping_is_recorded_calls_again_with_the_same_key() -> None:
    modules, cells = example()
    env = WorkflowEnvironment(cells=modules, deliver=redelivering)
    crashed = crash_once(env, "before")
    arn = env.start(DEFINITION, ORDER, name="crash-before")
    env.run(arn)
    assert crashed == ["before"]
    assert env.describe(arn)["status"] == "SUCCEEDED"
    assert cells.SERVICES.operations() == [*FORWARD, "shipping.create"]
    first, second = [c for c in cells.SERVICES.calls if c.operation == "shipping.create"]
    assert first.token == second.token  # the same idempotency key on the second call...
    assert len(cells.SERVICES.shipments) == 1  # ...so the service booked one courier
