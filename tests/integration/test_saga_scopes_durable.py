"""Sagas, second review, on the DynamoDB log over moto (the stepper Lambda for executions).

An orphaned run's effects undone, two compensate tasks at once, a claim that ran out (or
whose compensation failed) taken over, and Map iterations compensating their own cells:
the same counted tests as tests/unit/cells/test_saga_scopes.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from stepflow.testing import WorkflowEnvironment, open_environment

from tests.unit.cells.saga_support import Shop
from tests.unit.cells.test_saga_scopes import (
    ITEMS,
    ChargeThenShip,
    claim_taken_over,
    concurrent_compensates,
    failed_claim_given_up,
    map_saga,
    orphaned_charge,
)

pytest.importorskip("moto")


@pytest.fixture
def env() -> Iterator[WorkflowEnvironment]:
    with open_environment("moto", cells=Shop().modules(ChargeThenShip)) as made:
        yield made


def test_the_effects_of_a_run_that_never_finished_are_compensated(
    env: WorkflowEnvironment,
) -> None:
    shop = orphaned_charge(env.log)  # type: ignore[arg-type]
    assert shop.calls == ["charge", "refund"]


def test_two_compensate_tasks_at_once_run_each_compensation_once(
    env: WorkflowEnvironment,
) -> None:
    concurrent_compensates(env.log)  # type: ignore[arg-type]


def test_a_claim_that_ran_out_is_taken_over_on_the_durable_path(
    env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    claim_taken_over(env.log, monkeypatch)  # type: ignore[arg-type]


def test_a_failed_compensation_gives_its_claim_up_on_the_durable_path(
    env: WorkflowEnvironment,
) -> None:
    failed_claim_given_up(env.log)  # type: ignore[arg-type]


def test_a_map_iteration_compensates_only_its_own_cells_on_the_durable_path() -> None:
    shop = Shop()
    shop.fail["ship:z"] = 1
    with open_environment("moto", cells=shop.modules()) as env:
        arn = env.start(env.register(map_saga(1)), ITEMS)
        env.run(arn)
        result = env.result(arn)
    assert result.status == "SUCCEEDED", result.cause
    assert shop.calls.count("hold") == 3 and shop.calls.count("ship") == 3
    assert [d for d in shop.details if d.startswith("release")] == ["release:h-z"]
