"""Sagas on the cell runtime itself: registration, crashes, replay, limits, hostile records."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

import pytest
from stepflow.cells import Cell, CellContext, CellRuntime, LogJournal
from stepflow.cells.saga_log import (
    MAX_ENTRIES,
    SagaEntry,
    SagaLimitError,
    SagaLog,
    entries_id,
    saga_partition,
)
from stepflow.runtime import InMemoryLog
from stepflow.runtime.leases import TaskLease

from tests.unit.cells.saga_support import (
    ARN,
    COMPENSATE,
    ORDER,
    Crash,
    Inventory,
    Order,
    OrderError,
    ReleaseStock,
    Reserved,
    ReserveStock,
    Shop,
    body,
)


class CountingLeases(InMemoryLog):
    """The memory log, counting lease reads and writes by record kind (``fx``, ``saga``)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: Counter[str] = Counter()
        self.puts: Counter[str] = Counter()

    def lease(self, execution_arn: str, task_id: str) -> TaskLease | None:
        self.reads[task_id.split("#")[0]] += 1
        return super().lease(execution_arn, task_id)

    def put_lease(self, lease: TaskLease) -> None:
        self.puts[lease.task_id.split("#")[0]] += 1
        super().put_lease(lease)


def runtime(shop: Shop, *extra: Any) -> tuple[CellRuntime, CountingLeases]:
    modules = shop.modules(*extra)
    log = CountingLeases()
    return CellRuntime(modules.cells, modules.handlers, LogJournal(log)), log


def order(run: CellRuntime) -> None:
    """Reserve (t1) and charge (t2), both succeeding."""
    assert run(body("cell:reserve-stock:1", "t1")).ok
    assert run(body("cell:charge-card:1", "t2")).ok


def test_a_cell_without_compensation_costs_no_saga_read_or_write() -> None:
    shop = Shop()
    run, log = runtime(shop)
    assert run(body("cell:ship:1", "t1")).ok
    assert log.puts["fx"] == 1 and log.puts["saga"] == log.reads["saga"] == 0
    assert run(body("cell:charge-card:1", "t2")).ok  # one effect naming a refund
    assert log.puts["fx"] == 2 and log.puts["saga"] == 1


def test_a_re_run_or_duplicate_of_an_attempt_registers_its_entries_once() -> None:
    shop = Shop()
    run, log = runtime(shop)
    order(run)
    before = log.puts["saga"]
    order(run)  # the same attempts again: effects replayed, nothing new to register
    assert log.puts["saga"] == before == 2
    assert shop.calls == ["hold", "charge"]
    entries = SagaLog(log, ARN).entries()
    assert [(e.kind, e.cell, e.attempt) for e in entries] == [
        ("cell", "reserve-stock@1.0.0", "t1"),
        ("effect", "charge-card@1.0.0", "t2"),
    ]


def test_compensation_traces_carry_the_compensate_scope() -> None:
    shop = Shop()
    run, _log = runtime(shop)
    order(run)
    outcome = run(body("saga:compensate", "t3", {"anything": "ignored"}))
    assert outcome.ok, outcome.cause
    assert [(t["effect"], t["scope"], t["replayed"]) for t in outcome.effects] == [
        ("RefundCard", "compensate:t2#fx0", False),
        ("ReleaseStock", "compensate:t1#cell", False),
    ]
    # the compensation's idempotency keys are its own, not the compensated effect's
    assert len(set(shop.tokens)) == 4


def test_a_crash_before_the_done_marker_replays_the_compensation_instead_of_repeating_it() -> None:
    shop = Shop()
    run, log = runtime(shop)
    order(run)
    put = log.put_lease
    crashes = ["saga#done#t2#fx0"]

    def dying(lease: TaskLease) -> None:
        if lease.task_id in crashes:
            crashes.remove(lease.task_id)
            raise Crash
        put(lease)

    log.put_lease = dying  # type: ignore[method-assign]
    with pytest.raises(Crash):
        run(body("saga:compensate", "t3"))
    assert shop.calls == ["hold", "charge", "refund"]
    outcome = run(body("saga:compensate", "t3"))  # the same attempt, redelivered
    assert outcome.ok, outcome.cause
    assert shop.calls == ["hold", "charge", "refund", "release"]
    assert [t["replayed"] for t in outcome.effects] == [True, False]


class ReleaseTwice(Cell[Order, Reserved, OrderError, Inventory]):
    """Undoes itself with two effects."""

    name = "release-twice"

    def run(self, ctx: CellContext[Inventory], data: Order) -> Reserved:
        return Reserved(hold_id="h-1")

    def compensate(self, ctx: CellContext[Inventory], data: Order, output: Reserved) -> None:
        ctx.effect(ReleaseStock(hold_id=output.hold_id))
        ctx.effect(ReleaseStock(hold_id="h-2"))


def test_a_failed_compensation_fails_the_task_and_a_retry_resumes_without_repeating() -> None:
    shop = Shop()
    shop.fail["release:h-2"] = 1
    run, _log = runtime(shop, ReleaseTwice)
    order(run)
    assert run(body("cell:release-twice", "t3")).ok
    failed = run(body("saga:compensate", "t4"))
    assert not failed.ok and failed.error == "ReleaseUnavailable"
    assert [t["ok"] for t in failed.effects] == [True, False]
    retried = run(body("saga:compensate", "t5"))  # a Retry: a new attempt of the state
    assert retried.ok, retried.cause
    assert shop.details[2:] == [
        "release:h-1",
        "release:h-2",  # failed
        "release:h-2",  # tried again; h-1 replayed, not repeated
        "refund:c-30",
        "release:h-a",
    ]
    assert [c["cell"] for c in retried.output["compensated"]] == [
        "release-twice@1.0.0",
        "charge-card@1.0.0",
        "reserve-stock@1.0.0",
    ]
    assert run(body("saga:compensate", "t6")).output == {"compensated": []}


def test_a_non_deterministic_compensation_is_detected() -> None:
    shop = Shop()
    shop.crash["release:h-2"] = 1
    run, _log = runtime(shop, ReleaseTwice)
    assert run(body("cell:release-twice", "t1")).ok
    with pytest.raises(Crash):  # dies after its first effect was recorded
        run(body("saga:compensate", "t2"))
    original = ReleaseTwice.compensate

    def changed(self: Any, ctx: Any, data: Any, output: Any) -> None:
        ctx.effect(ReleaseStock(hold_id="other"))

    ReleaseTwice.compensate = changed  # type: ignore[method-assign]
    try:
        outcome = run(body("saga:compensate", "t2"))
    finally:
        ReleaseTwice.compensate = original  # type: ignore[method-assign]
    assert not outcome.ok and outcome.error == "StepFlow.Cell.NonDeterministic"
    assert shop.details == ["release:h-1"]  # nothing performed by the changed compensation
    assert run(body("saga:compensate", "t3")).ok  # deterministic again: the rest runs once
    assert shop.details == ["release:h-1", "release:h-2"]


class ReserveV11(ReserveStock):
    """A later version whose compensation differs: a recorded run keeps its own version's."""

    version = "1.1.0"

    def compensate(self, ctx: CellContext[Inventory], data: Order, output: Reserved) -> None:
        ctx.effect(ReleaseStock(hold_id="v1.1"))


def test_a_cell_is_compensated_by_the_exact_version_that_ran() -> None:
    shop = Shop()
    run, _log = runtime(shop)
    assert run(body("cell:reserve-stock:1", "t1")).ok
    run.cells.register(ReserveV11)
    outcome = run(body("saga:compensate", "t2"))
    assert outcome.ok, outcome.cause
    assert shop.details == ["hold:a", "release:h-a"]


def test_a_big_output_past_the_record_bound_fails_the_run_clearly() -> None:
    shop = Shop()
    run, log = runtime(shop)
    outcome = run(body("cell:reserve-stock:1", "t1", {**ORDER, "sku": "x" * 300_000}))
    assert not outcome.ok and outcome.error == "StepFlow.Saga.LimitExceeded"
    assert "256" in (outcome.cause or "") or "262144" in (outcome.cause or "")
    assert SagaLog(log, ARN).entries() == []


def test_the_saga_holds_at_most_max_entries() -> None:
    saga = SagaLog(InMemoryLog(), ARN)
    many = [SagaEntry("effect", "c@1", f"t{i}", "S", type="x", request={}) for i in range(1000)]
    assert saga.add(many) == []  # none late: no compensate sealed the saga
    with pytest.raises(SagaLimitError, match="at most 1000"):
        saga.add([SagaEntry("effect", "c@1", "late", "S")])
    assert len(saga.entries()) == MAX_ENTRIES


def test_concurrent_registrations_both_land() -> None:
    log = InMemoryLog()
    saga = SagaLog(log, ARN)
    put = log.put_lease
    raced: list[bool] = []

    def racing(lease: TaskLease) -> None:
        if not raced and lease.task_id == entries_id(""):
            raced.append(True)
            SagaLog(log, ARN).add([SagaEntry("effect", "c@1", "other", "S")])
        put(lease)

    log.put_lease = racing  # type: ignore[method-assign]
    saga.add([SagaEntry("effect", "c@1", "mine", "S")])
    assert [e.attempt for e in saga.entries()] == ["other", "mine"]


def test_a_recorded_type_path_is_never_imported() -> None:
    shop = Shop()
    run, log = runtime(shop)
    hostile = [
        {"kind": "effect", "cell": "c@1", "attempt": "t1", "state": "S", "index": 0,
         "effect": "Boom", "type": "tests.unit.cells.never_imported.Boom", "request": {}},
        {"kind": "effect", "cell": "c@1", "attempt": "t2", "state": "S", "index": 0,
         "effect": "Popen", "type": "subprocess.Popen", "request": {"args": ["true"]}},
    ]  # fmt: skip
    log.put_lease(TaskLease(ARN, entries_id(""), version=1, result={"entries": hostile}))
    outcome = run(body("saga:compensate", "t3"))
    assert not outcome.ok and outcome.error == "StepFlow.Saga.UnknownEffect"
    assert "subprocess.Popen" in (outcome.cause or "")
    assert "tests.unit.cells.never_imported" not in sys.modules
    assert shop.calls == []


def test_each_express_item_has_its_own_saga() -> None:
    assert saga_partition("express/0/3/t1") == saga_partition("express/2/3/t9") == "express/3"
    assert saga_partition("t1") == saga_partition("express/odd") == ""
    shop = Shop()
    run, _log = runtime(shop)
    for item in ("1", "2"):
        attempt = f"express/0/{item}/t1"
        assert run(body("cell:charge-card:1", "t1", {**ORDER, "amount": item}, attempt_id=attempt))
    outcome = run(body("saga:compensate", "t2", attempt_id="express/0/2/t2"))
    assert outcome.ok and len(outcome.output["compensated"]) == 1
    assert shop.details[-1] == "refund:c-2"
    assert run(body("saga:compensate", "t2", attempt_id="express/0/1/t2")).ok
    assert shop.details[-1] == "refund:c-1"
    assert shop.calls.count("refund") == 2


def test_compensate_with_another_stepflow_action_is_refused() -> None:
    shop = Shop()
    run, _log = runtime(shop)
    outcome = run({**body("saga:compensate", "t1"), "resource": COMPENSATE + ".sync"})
    assert not outcome.ok and outcome.error == "States.Runtime"


@pytest.mark.parametrize(
    "stored",
    [{"entries": "nope"}, {"entries": [{"kind": "cell", "index": "x"}]}, {"other": 1}],
)
def test_a_damaged_saga_record_fails_clearly(stored: dict[str, Any]) -> None:
    shop = Shop()
    run, log = runtime(shop)
    log.put_lease(TaskLease(ARN, entries_id(""), version=1, result=stored))
    outcome = run(body("saga:compensate", "t1"))
    assert not outcome.ok and outcome.error == "StepFlow.Saga.InvalidEntry", outcome.cause
    charged = run(body("cell:charge-card:1", "t2"))
    assert not charged.ok and charged.error == "StepFlow.Saga.InvalidEntry"
    assert shop.calls == []  # refused before the charge: its refund could not be registered


def test_a_compensation_keeps_its_idempotency_key_across_compensate_attempts() -> None:
    shop = Shop()
    shop.fail["refund"] = 1
    run, _log = runtime(shop)
    order(run)
    assert not run(body("saga:compensate", "t3")).ok
    assert run(body("saga:compensate", "t4")).ok  # another attempt (a Retry, or another task)
    refunds = [t for c, t in zip(shop.calls, shop.tokens, strict=True) if c == "refund"]
    assert len(refunds) == 2 and refunds[0] == refunds[1]


def test_a_journal_wrapper_must_expose_its_log() -> None:
    shop = Shop()
    run, log = runtime(shop)
    inner = run.journal

    class Wrapper:
        def recorded(self, key: Any) -> Any:
            return inner.recorded(key)

        def record(self, key: Any, record: Any) -> Any:
            return inner.record(key, record)

    run.journal = Wrapper()
    assert run(body("cell:ship:1", "t1")).ok  # nothing to undo: no log needed
    with pytest.raises(TypeError, match=r"log = inner\.log"):
        run(body("cell:charge-card:1", "t2"))
    Wrapper.log = log  # type: ignore[attr-defined]
    assert run(body("cell:charge-card:1", "t2")).ok
    assert [e.attempt for e in SagaLog(log, ARN).entries()] == ["t2"]


class ExitsWhenUndone(Cell[Order, Reserved, OrderError, Inventory]):
    """A compensation that calls ``sys.exit``: a failure of the task, not of the process."""

    name = "exits-when-undone"

    def run(self, ctx: CellContext[Inventory], data: Order) -> Reserved:
        return Reserved(hold_id="h-x")

    def compensate(self, ctx: CellContext[Inventory], data: Order, output: Reserved) -> None:
        sys.exit(3)


def test_a_compensation_raising_system_exit_fails_the_compensate_task() -> None:
    shop = Shop()
    run, _log = runtime(shop, ExitsWhenUndone)
    assert run(body("cell:exits-when-undone", "t1")).ok
    failed = run(body("saga:compensate", "t2"))
    assert not failed.ok and failed.error == "SystemExit"


def test_a_compensate_message_naming_no_attempt_is_refused() -> None:
    run, log = runtime(Shop())
    with pytest.raises(ValueError, match="attempt"):
        run({k: v for k, v in body("saga:compensate", "t1").items() if k != "task_id"})
    assert sum(log.puts.values()) == 0  # nothing written under an empty attempt
