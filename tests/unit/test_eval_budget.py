"""Time budgets, driven by a fake budget that runs out after N checks (no timing)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from stepflow.data.budget import BudgetExceeded, ClockBudget, DecisionDeferred
from stepflow.errors import StatesErrorName
from stepflow.limits import DEFAULT_LIMITS
from stepflow.testing import WorkflowEnvironment
from stepflow.testing.environment_tasks import cpu_budgets

START = 1_700_000_000.0


class FakeBudget:
    """Counts checks; runs out after ``expression`` checks of one expression or ``decision``
    checks in all, or defers the decision after ``defer`` checks."""

    def __init__(
        self,
        *,
        expression: int | None = None,
        decision: int | None = None,
        defer: int | None = None,
    ) -> None:
        self.expression, self.decision, self.defer = expression, decision, defer
        self.checks = 0
        self.in_expression = 0
        self.expressions = 0

    def start_expression(self) -> None:
        self.expressions += 1
        self.in_expression = 0

    def check(self) -> None:
        self.checks += 1
        self.in_expression += 1
        if self.defer is not None and self.checks > self.defer:
            raise DecisionDeferred
        if self.decision is not None and self.checks > self.decision:
            raise BudgetExceeded("decision", 10)
        if self.expression is not None and self.in_expression > self.expression:
            raise BudgetExceeded("expression", 1)


def _factory(made: list[FakeBudget], **limits: int) -> Callable[[], FakeBudget]:
    def make() -> FakeBudget:
        made.append(FakeBudget(**limits))
        return made[-1]

    return make


def _jsonata(expression: str, **state: Any) -> dict[str, Any]:
    work = {"Type": "Pass", "Output": "{% " + expression + " %}", "End": True, **state}
    states: dict[str, Any] = {"Work": work}
    if "Catch" in state:  # a Task, which can catch
        work.update(Type="Task", Resource=NOOP)
        states["Caught"] = {"Type": "Pass", "Output": "{% $states.input %}", "End": True}
    return {"QueryLanguage": "JSONata", "StartAt": "Work", "States": states}


NOOP = "arn:aws:lambda:us-east-1:123456789012:function:noop"
HUGE_MAP = "$count($map([1..10000000], function($v){$v * 2}))"


def _run(definition: dict[str, Any], **budget: int) -> tuple[Any, list[FakeBudget]]:
    made: list[FakeBudget] = []
    env = WorkflowEnvironment(
        start_time=START, budgets=_factory(made, **budget), handlers={NOOP: lambda value: value}
    )
    arn = env.start(definition, {})
    env.run(arn)
    return env.result(arn), made


def test_map_over_ten_million_items_stops_at_the_expression_budget() -> None:
    result, made = _run(_jsonata(HUGE_MAP), expression=5_000)
    assert result.status == "FAILED"
    assert result.error == StatesErrorName.QUERY_EVALUATION_ERROR
    assert "expression budget of 1 s exceeded" in result.cause
    assert HUGE_MAP in result.cause
    # it stopped right after the budget ran out, not after ten million items
    assert sum(b.checks for b in made) < 6_000


def test_each_map_iteration_checks_the_budget() -> None:
    result, made = _run(_jsonata("$count($map([1..2000], function($v){$v * 2}))"))
    assert result.result == 2000
    assert sum(b.checks for b in made) >= 2000


def test_runaway_recursion_stops_at_the_expression_budget() -> None:
    result, _ = _run(_jsonata("($f := function($x){$f($x + 1)}; $f(0))"), expression=10_000)
    assert (result.status, result.error) == ("FAILED", StatesErrorName.QUERY_EVALUATION_ERROR)
    assert "expression budget of 1 s exceeded" in result.cause


def test_building_a_huge_range_checks_the_budget_inside_the_library() -> None:
    # [1..1e7] is materialised in one library call, without evaluation steps
    result, made = _run(_jsonata("$count([1..10000000])"), expression=20)
    assert result.error == StatesErrorName.QUERY_EVALUATION_ERROR
    assert "expression budget" in result.cause
    assert sum(b.checks for b in made) < 100


def test_an_exhausted_expression_budget_is_catchable_like_any_query_error() -> None:
    catch = {"Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]}
    result, _ = _run(_jsonata(HUGE_MAP, **catch), expression=1_000)
    assert result.status == "SUCCEEDED"
    assert result.result["Error"] == StatesErrorName.QUERY_EVALUATION_ERROR
    assert "expression budget of 1 s exceeded" in result.result["Cause"]


def test_an_exhausted_decision_budget_fails_the_execution_even_under_catch_all() -> None:
    catch = {"Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]}
    result, _ = _run(_jsonata(HUGE_MAP, **catch), decision=1_000)
    assert (result.status, result.error) == ("FAILED", StatesErrorName.RUNTIME)
    assert "decision budget of 10 s exceeded" in result.cause
    assert "Caught" not in result.states_entered()


def test_a_jsonpath_loop_stops_at_the_decision_budget() -> None:
    loop = {
        "StartAt": "Spin",
        "States": {
            "Spin": {"Type": "Pass", "Next": "Again"},
            "Again": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.stop", "IsPresent": True, "Next": "Done"}],
                "Default": "Spin",
            },
            "Done": {"Type": "Succeed"},
        },
    }
    result, made = _run(loop, decision=300)
    assert (result.status, result.error) == ("FAILED", StatesErrorName.RUNTIME)
    assert "decision budget of 10 s exceeded" in result.cause
    assert made[0].checks == 301  # the first decision ran out; nothing ran after it


def test_jsonpath_evaluation_out_of_expression_budget_is_a_runtime_error() -> None:
    rules = [{"Variable": f"$.k{i}", "IsPresent": True, "Next": "Done"} for i in range(50)]
    choice = {
        "StartAt": "Pick",
        "States": {
            "Pick": {
                "Type": "Choice",
                "Choices": rules,
                "Default": "Done",
            },
            "Done": {"Type": "Succeed"},
        },
    }
    result, _ = _run(choice, expression=10)
    assert (result.status, result.error) == ("FAILED", StatesErrorName.RUNTIME)
    assert "expression budget of 1 s exceeded" in result.cause


def test_map_over_a_huge_inline_array_checks_per_item() -> None:
    definition = {
        "StartAt": "Fan",
        "States": {
            "Fan": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "P",
                    "States": {"P": {"Type": "Pass", "End": True}},
                },
                "End": True,
            }
        },
    }
    made: list[FakeBudget] = []
    env = WorkflowEnvironment(
        start_time=START, budgets=_factory(made, decision=500), child_limit=None
    )
    arn = env.start(definition, {"items": list(range(30))})
    env.run(arn)
    assert env.result(arn).status == "SUCCEEDED"
    made.clear()
    arn = env.start(definition, {"items": list(range(5_000))})
    env.run(arn)
    result = env.result(arn)
    assert (result.status, result.error) == ("FAILED", StatesErrorName.RUNTIME)
    assert "decision budget" in result.cause


def test_the_clock_budget_names_the_budget_that_ran_out() -> None:
    now = [0.0]
    budget = ClockBudget(lambda: now[0], expression_seconds=1, decision_seconds=10)
    budget.check()
    now[0] = 1.5
    with pytest.raises(BudgetExceeded, match="expression budget of 1 s exceeded"):
        budget.check()
    budget.start_expression()
    budget.check()
    now[0] = 10.5
    with pytest.raises(BudgetExceeded, match="decision budget of 10 s exceeded"):
        budget.check()
    deferring = ClockBudget(
        lambda: now[0], expression_seconds=1, decision_seconds=10, defer_seconds=0.5
    )
    now[0] += 0.6
    with pytest.raises(DecisionDeferred):
        deferring.check()


# --- the API's inline first decision ---------------------------------------------------------

SLOW_START = {
    "QueryLanguage": "JSONata",
    "StartAt": "Work",
    "States": {
        "Work": {
            "Type": "Pass",
            "Output": "{% $count($map([1..500], function($v){$v})) %}",
            "End": True,
        }
    },
}


def test_a_slow_first_decision_is_left_to_the_queue_and_decided_once() -> None:
    made: list[FakeBudget] = []
    env = WorkflowEnvironment(
        start_time=START,
        budgets=_factory(made),
        start_budgets=_factory(made, defer=100),
    )
    arn = env.start(SLOW_START, {"n": 1})
    assert env.history(arn) == []  # stored undecided: nothing was committed but the record
    assert env.describe(arn)["status"] == "RUNNING"
    assert [(m.kind, m.body) for m in env.bus.sent] == [("event", {"type": "Start"})]
    env.run(arn)
    result = env.result(arn)
    assert (result.status, result.result) == ("SUCCEEDED", 500)
    types = [e["type"] for e in result.history]
    assert types.count("ExecutionStarted") == 1
    assert result.states_entered() == ["Work"]
    assert made[0].checks == 101 and made[1].checks >= 500  # deferred once, decided once


def test_a_redelivered_deferred_start_is_ignored() -> None:
    made: list[FakeBudget] = []
    env = WorkflowEnvironment(
        start_time=START, budgets=_factory(made), start_budgets=_factory(made, defer=100)
    )
    arn = env.start(SLOW_START, {})
    record = env.log.get(arn)
    assert record is not None and record.outbox == ()
    [message] = env.bus.sent
    env.bus.send(message)  # a duplicate delivery of the Start message
    env.run(arn)
    result = env.result(arn)
    assert result.status == "SUCCEEDED"
    assert [e["type"] for e in result.history].count("ExecutionStarted") == 1
    assert result.states_entered() == ["Work"]


def test_a_quick_first_decision_is_not_deferred() -> None:
    made: list[FakeBudget] = []
    env = WorkflowEnvironment(
        start_time=START, budgets=_factory(made), start_budgets=_factory(made, defer=10_000)
    )
    arn = env.start(SLOW_START, {})
    assert env.result(arn).status == "SUCCEEDED"  # decided inline, in the start call


def test_a_sampled_clock_budget_reads_no_clock_when_an_expression_starts() -> None:
    now = [0.0]
    reads: list[str] = []

    def wall() -> float:
        reads.append("wall")
        return now[0]

    def cpu() -> float:
        reads.append("cpu")
        return now[0]

    budget = ClockBudget(
        wall, expression_seconds=1, decision_seconds=10, every=4, expression_clock=cpu
    )
    assert reads == ["wall"]  # the expression's deadline is set by the first sampled check
    for _ in range(3):
        budget.start_expression()
        budget.check()
    assert reads == ["wall"]  # neither starts nor unsampled checks read a clock
    now[0] = 5.0
    budget.check()  # the 4th check: the expression's deadline starts here, not at 0
    assert reads == ["wall", "wall", "cpu"]
    now[0] = 5.9
    for _ in range(4):
        budget.check()
    now[0] = 6.1
    for _ in range(3):
        budget.check()
    with pytest.raises(BudgetExceeded, match="expression budget of 1 s exceeded"):
        budget.check()
    assert reads.count("cpu") == 3


def test_a_sampled_clock_budget_on_one_clock_reads_it_once_per_check() -> None:
    reads = [0]

    def clock() -> float:
        reads[0] += 1
        return 0.0

    budget = ClockBudget(clock, expression_seconds=1, decision_seconds=10, every=2)
    for _ in range(4):
        budget.start_expression()
        budget.check()
    assert reads[0] == 1 + 2


def test_a_gated_budget_reads_its_slow_clocks_once_per_gate_interval() -> None:
    # GIVEN a budget on a slow CPU clock, sampled on every check, gated by a wall clock
    wall, cpu, reads = [0.0], [0.0], Counter[str]()

    def gate() -> float:
        reads["gate"] += 1
        return wall[0]

    def thread_cpu() -> float:
        reads["cpu"] += 1
        return cpu[0]

    budget = ClockBudget(
        thread_cpu, expression_seconds=1, decision_seconds=10, gate=gate, gate_seconds=0.001
    )
    assert reads == {"cpu": 1, "gate": 1}
    # WHEN a thousand checks within the gate's millisecond
    for _ in range(1_000):
        budget.check()
    # THEN the gate was read each time, the CPU clock never again
    assert reads == {"cpu": 1, "gate": 1_001}
    # WHEN the wall clock passes the millisecond THEN the next check reads the CPU clock, once
    wall[0] = 0.0011
    budget.check()
    budget.check()
    assert reads["cpu"] == 2


def gated(cpu: list[float], wall: list[float], **budgets: Any) -> ClockBudget:
    """A budget on the fake CPU clock ``cpu``, gated by the fake wall clock ``wall`` (1 ms)."""
    options: dict[str, Any] = {"expression_seconds": 100, "decision_seconds": 10, **budgets}
    return ClockBudget(lambda: cpu[0], gate=lambda: wall[0], gate_seconds=0.001, **options)


def test_a_gated_budget_runs_out_no_later_than_the_gate_allows() -> None:
    wall, cpu = [0.0], [0.0]
    budget = gated(cpu, wall, expression_seconds=1)
    budget.start_expression()
    # WHEN the thread's CPU time passes the expression budget while the wall clock has not
    # moved a millisecond since the last read THEN not yet noticed
    cpu[0] = 1.5
    wall[0] = 0.0005
    budget.check()
    # WHEN the wall clock (never slower than a thread's CPU time) passes the gate THEN it is
    wall[0] = 1.5
    with pytest.raises(BudgetExceeded, match="expression budget of 1 s exceeded"):
        budget.check()
    # AND the decision budget likewise, and a deferral
    decision = gated(cpu, wall)
    cpu[0] = wall[0] = 12.0  # 10.5 s after it started
    with pytest.raises(BudgetExceeded, match="decision budget of 10 s exceeded"):
        decision.check()
    deferring = ClockBudget(
        lambda: wall[0],
        expression_seconds=100,
        decision_seconds=10,
        defer_seconds=1,
        gate=lambda: wall[0],
    )
    wall[0] = 13.5  # 1.5 s after it started
    with pytest.raises(DecisionDeferred):
        deferring.check()


def test_the_test_drivers_budget_stops_a_runaway_expression_with_the_gate() -> None:
    # GIVEN the budgets execute() uses (the thread's CPU time, gated by the wall clock)
    budget = cpu_budgets(replace(DEFAULT_LIMITS, expression_budget_seconds=0.05))()
    budget.start_expression()
    started = time.perf_counter()
    # WHEN an expression burns CPU, checking as an evaluator does
    # THEN it is stopped (within its 50 ms of CPU time, the gate's millisecond and the
    # sampling aside; the loop's 30 s of wall time only ends a budget that never runs out)
    with pytest.raises(BudgetExceeded, match="expression budget"):
        while time.perf_counter() - started < 30:
            budget.check()


def test_a_gate_gone_backwards_or_far_ahead_does_not_turn_the_deadlines_off() -> None:
    wall, cpu = [100.0], [0.0]
    budget = gated(cpu, wall, expression_seconds=100)
    # WHEN the gate reads far ahead once, then goes back to where it was
    wall[0] = 1e9
    budget.check()
    wall[0] = 100.5
    cpu[0] = 11.0
    # THEN the next check reads the slow clock anyway, and the decision deadline holds
    with pytest.raises(BudgetExceeded, match="decision budget of 10 s exceeded"):
        budget.check()
