"""The order saga example (examples/saga) end to end: boto3 against ``stepflow local``.

The stack loads the example's cells module as ``STEPFLOW_CELLS`` does for a
deployed stepper (``LocalStack(cells=...)``, ``stepflow local --cells``); the
cells run inline in the stack's task runners, their effects journaled in the
stack's DynamoDB table on moto. Every call of the example's in-process
services is counted: each effect happens exactly once; when shipping fails the
refund and the release run exactly once each, newest first. The same example
runs in memory in tests/unit/cells/test_saga_example.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stepflow.cli import main
from stepflow.local import LocalStack, free_port

from tests.e2e.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
SAGA = ROOT / "examples" / "saga"
ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"
DEFINITION = (SAGA / "order-saga.asl.json").read_text()
ORDER = json.loads((SAGA / "order.input.json").read_text())
UNSHIPPABLE = json.loads((SAGA / "order-unshippable.input.json").read_text())
FORWARD = ["inventory.hold", "payments.charge", "shipping.create"]


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0, cells=str(SAGA / "cells.py")) as running:
        yield running


@pytest.fixture
def services(stack: LocalStack) -> Any:
    """The example's services as the stack's handlers see them, reset."""
    assert stack.wiring is not None
    cell = stack.wiring.cell_modules.cells.resolve("reserve-stock")
    found = cell.run.__globals__["SERVICES"]  # the module the stack loaded
    found.reset()
    return found


@pytest.fixture(scope="module")
def machine(stack: LocalStack) -> str:
    sfn = stack.stepfunctions()
    created = sfn.create_state_machine(name="order-saga", definition=DEFINITION, roleArn=ROLE)
    return str(created["stateMachineArn"])


def run(stack: LocalStack, machine: str, order: Any, name: str) -> dict[str, Any]:
    sfn = stack.stepfunctions()
    arn = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(order))
    return wait_for(sfn, arn["executionArn"], timeout=60)


def history(stack: LocalStack, execution_arn: str) -> list[dict[str, Any]]:
    pages = stack.stepfunctions().get_paginator("get_execution_history")
    return [e for page in pages.paginate(executionArn=execution_arn) for e in page["events"]]


def test_an_order_is_reserved_charged_and_shipped_each_once(
    stack: LocalStack, machine: str, services: Any
) -> None:
    described = run(stack, machine, ORDER, "ord-2001")
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["charged_cents"] == 3300 and output["tracking_number"].startswith("trk-")
    assert services.operations() == FORWARD
    assert len({call.token for call in services.calls}) == 3
    events = history(stack, described["executionArn"])
    scheduled = [e["taskScheduledEventDetails"] for e in events if e["type"] == "TaskScheduled"]
    assert [(s["resourceType"], s["resource"]) for s in scheduled] == [
        ("stepflow", "cell:reserve-stock:1"),
        ("stepflow", "cell:charge-card:1"),
        ("stepflow", "cell:ship:1"),
    ]
    succeeded = [e["taskSucceededEventDetails"] for e in events if e["type"] == "TaskSucceeded"]
    assert len(succeeded) == 3
    assert json.loads(succeeded[1]["output"])["amount_cents"] == 3300


def test_an_unshippable_order_fails_shipping_once_and_is_caught(
    stack: LocalStack, machine: str, services: Any
) -> None:
    described = run(stack, machine, UNSHIPPABLE, "ord-2002-caught")
    assert described["status"] == "FAILED"
    assert services.operations()[:3] == FORWARD
    events = history(stack, described["executionArn"])
    failed = [e["taskFailedEventDetails"] for e in events if e["type"] == "TaskFailed"]
    assert failed[0]["error"] == "ShippingFailed"
    assert json.loads(failed[0]["cause"]) == {"reason": "no courier serves AQ"}
    scheduled = [e["taskScheduledEventDetails"] for e in events if e["type"] == "TaskScheduled"]
    assert scheduled[-1]["resource"] == "saga:compensate"


def test_an_unshippable_order_is_refunded_then_released_exactly_once(
    stack: LocalStack, machine: str, services: Any
) -> None:
    described = run(stack, machine, UNSHIPPABLE, "ord-2002")
    assert described["status"] == "FAILED" and described["error"] == "OrderFailed", described
    assert services.operations() == [*FORWARD, "payments.refund", "inventory.release"]
    assert services.stock == {"book": 100, "lamp": 10, "mug": 50, "poster": 0}
    assert not services.holds and len(services.refunds) == 1
    events = history(stack, described["executionArn"])
    compensated = [e for e in events if e["type"] == "TaskSucceeded"][-1]
    output = json.loads(compensated["taskSucceededEventDetails"]["output"])
    assert [entry["cell"] for entry in output["compensated"]][:2] == [
        "charge-card@1.0.0",
        "reserve-stock@1.0.0",
    ]


def test_concurrent_orders_each_perform_every_effect_once(
    stack: LocalStack, machine: str, services: Any
) -> None:
    sfn = stack.stepfunctions()
    arns = [
        sfn.start_execution(
            stateMachineArn=machine,
            name=f"burst-{i}",
            input=json.dumps({**ORDER, "order_id": f"burst-{i}"}),
        )["executionArn"]
        for i in range(6)
    ]
    assert all(wait_for(sfn, arn, timeout=90)["status"] == "SUCCEEDED" for arn in arns)
    calls = Counter((c.operation, c.subject) for c in services.calls)
    assert calls == Counter({(op, f"burst-{i}"): 1 for op in FORWARD for i in range(6)})
    assert services.stock["book"] == 100 - 6 * 2


def test_stepflow_local_cells_runs_the_example_demo() -> None:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable, "-m", "stepflow", "local", "--port", str(port),
        "--cells", str(SAGA / "cells.py"),
        "--demo", str(SAGA / "order-saga.asl.json"),
        "--input", f"@{SAGA / 'order.input.json'}",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "⚙ call stepflow:cell:ship:1" in done.stdout
    assert "SUCCEEDED" in done.stdout and '"charged_cents": 3300' in done.stdout


def test_stepflow_local_with_cells_that_cannot_load_exits_2(tmp_path: Path, capsys: Any) -> None:
    module = tmp_path / "broken_cells.py"
    module.write_text("raise RuntimeError('no cells today')\n")
    assert main(["local", "--port", "0", "--cells", str(module)]) == 2
    captured = capsys.readouterr()
    assert "cannot load cells" in captured.err and "no cells today" in captured.err
    assert "StepFlow local stack" not in captured.out  # nothing was served
