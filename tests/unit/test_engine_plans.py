"""A Pass or Choice resolved once per state (``engine/plans.py``) runs as its general handler.

Each machine runs twice, with the plans and with every state on its type's general
handler (``run_pass``, ``run_choice``), and everything ``execute`` reports must be the
same: status, output, error, cause and every history event.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from stepflow.asl import parse
from stepflow.data.budget import Budget, BudgetExceeded, DecisionDeferred
from stepflow.engine import Start, new_execution, plans
from stepflow.engine.codec import encode_state
from stepflow.engine.decide import decide
from stepflow.engine.simple import run_choice, run_pass
from stepflow.limits import Limits
from stepflow.testing import execute

from tests.unit.test_engine_outcomes import differential_tool


def _outcome(definition: Any, value: Any) -> str:
    result = execute(definition, value)
    events = [{k: v for k, v in e.items() if k != "timestamp"} for e in result.history]
    return json.dumps(
        [result.status, result.output, result.error, result.cause, events], ensure_ascii=False
    )


def _general(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plans, "pass_plan", lambda node: run_pass)
    monkeypatch.setattr(plans, "choice_plan", lambda node: run_choice)


def _planned(definition: dict[str, Any]) -> int:
    """How many of the states of ``definition`` get a plan rather than the general handler."""
    machine = parse(definition)
    general = {run_pass, run_choice}
    return sum(
        plans.runner_of(node, run_pass) not in general
        for node in machine.root.states.values()
        if node.type in ("Pass", "Choice")
    )


def test_random_machines_run_the_same_planned_and_general(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = differential_tool().cases(600, 7, conformance=False)
    planned = [_outcome(definition, value) for _, definition, value in found]
    assert sum(_planned(definition) for _, definition, _ in found) > 600  # plans were run
    _general(monkeypatch)
    general = [_outcome(definition, value) for _, definition, value in found]
    differ = [case for case, a, b in zip(found, planned, general, strict=True) if a != b]
    assert not differ, f"{len(differ)} of {len(found)} differ; the first: {differ[0]}"


CHOICE = {
    "StartAt": "Pick",
    "States": {
        "Pick": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.i", "NumericGreaterThan": 5, "Next": "Big"},
                {"Variable": "$$.State.Name", "StringEquals": "Nope", "Next": "Big"},
                {"Variable": "$.s", "StringEquals": "go", "Next": "Big"},
                {"Variable": "$.s", "IsString": True, "Next": "Small"},
            ],
            "Default": "Small",
        },
        "Big": {"Type": "Pass", "Result": "big", "ResultPath": "$.r", "End": True},
        "Small": {"Type": "Pass", "Parameters": {"n.$": "$$.State.Name"}, "End": True},
    },
}


@pytest.mark.parametrize(
    "value",
    [{"i": 9}, {"i": 1, "s": "go"}, {"i": 1, "s": "x"}, {"i": 1}, {"s": "go"}, {"i": "9"}, [1], 3],
)
def test_a_choice_with_rules_on_the_context_runs_the_same(
    monkeypatch: pytest.MonkeyPatch, value: Any
) -> None:
    planned = _outcome(CHOICE, value)
    _general(monkeypatch)
    assert planned == _outcome(CHOICE, value)


def test_only_the_usual_shapes_get_a_plan() -> None:
    machine = parse(
        {
            "StartAt": "A",
            "States": {
                "A": {"Type": "Pass", "ResultPath": "$.x", "Next": "B"},
                "B": {"Type": "Pass", "OutputPath": "$.x", "Next": "C"},
                "C": {"Type": "Pass", "Assign": {"v": 1}, "Next": "D"},
                "D": {"Type": "Pass", "InputPath": "$.x", "Next": "E"},
                "E": {"Type": "Pass", "QueryLanguage": "JSONata", "Next": "F"},
                "F": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "G"}],
                    "Default": "G",
                },
                "G": {
                    "Type": "Choice",
                    "InputPath": "$.x",
                    "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "H"}],
                    "Default": "H",
                },
                "H": {"Type": "Succeed"},
            },
        }
    )
    states = machine.root.states
    runners = {name: plans.runner_of(node, run_pass) for name, node in states.items()}
    assert runners["A"] not in (run_pass, run_choice)
    assert runners["F"] not in (run_pass, run_choice)
    assert [runners[n] for n in "BCDE"] == [run_pass] * 4
    assert runners["G"] is run_choice
    assert runners["H"] is run_pass  # the general handler it was given
    assert all(states[name].runner is runners[name] for name in runners)  # kept on the node


PASSES = [
    {"Parameters": {"n.$": "States.MathAdd($.i, 1)"}, "Result": "fixed", "ResultPath": "$.r"},
    {"Parameters": {"n.$": "$.missing"}, "Result": "fixed"},  # evaluated, then replaced
    {"Parameters": {"n.$": "$$.State.Name", "k": 1}, "ResultPath": "$"},
    {"Result": {"m": True}, "ResultPath": "$.i"},
    {"Result": 1, "ResultPath": "$.i.deep"},
    {"ResultPath": None},
    {"Result": [1], "ResultPath": "$.s[0]"},
    {"InputPath": "$", "OutputPath": "$", "ResultPath": "$.i"},
]


@pytest.mark.parametrize("fields", PASSES)
@pytest.mark.parametrize("value", [{"i": 1, "s": ["a"]}, {"s": "x"}, [1], "text"])
def test_a_pass_of_each_shape_runs_the_same(
    monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], value: Any
) -> None:
    definition = {
        "StartAt": "P",
        "States": {"P": {"Type": "Pass", **fields, "Next": "Q"}, "Q": {"Type": "Succeed"}},
    }
    planned = _outcome(definition, value)
    _general(monkeypatch)
    assert planned == _outcome(definition, value)


@pytest.mark.parametrize("size", [80, 86, 88, 92])
@pytest.mark.parametrize("end", [True, False])
def test_a_planned_pass_over_the_payload_limit_fails_as_the_general_one(
    monkeypatch: pytest.MonkeyPatch, size: int, end: bool
) -> None:
    # the run loop exits a planned state; an output past the limit takes exit_state's way
    after: dict[str, Any] = {"End": True} if end else {"Next": "Q"}
    states: dict[str, Any] = {"P": {"Type": "Pass", "Parameters": {"s.$": "$.s", "k": 1}, **after}}
    if not end:
        states["Q"] = {"Type": "Succeed"}
    definition = {"StartAt": "P", "States": states}
    limits = Limits(max_payload_bytes=100)
    value = {"s": "é" * (size // 2)}  # two bytes a character: the limit's test by bytes

    def outcome() -> str:
        result = execute(definition, value, limits=limits)
        events = [{k: v for k, v in e.items() if k != "timestamp"} for e in result.history]
        return json.dumps([result.status, result.output, result.error, result.cause, events])

    planned = outcome()
    assert ("States.DataLimitExceeded" in planned) == (size + 14 > 100)  # {"s":"…","k":1}
    _general(monkeypatch)
    assert planned == outcome()


class _Countdown(Budget):
    """A time budget whose ``left``-th call of ``at`` (a state's start, or a ``check``: the
    fan-out's, between iterations) raises ``error``."""

    def __init__(self, left: int, error: Exception, at: str = "start_state") -> None:
        self.left, self.error, self.at = left, error, at

    def _count(self, call: str) -> None:
        if call == self.at:
            self.left -= 1
            if self.left == 0:
                raise self.error

    def start_state(self) -> None:
        self._count("start_state")

    def start_expression(self) -> None:
        return None

    def check(self) -> None:
        self._count("check")


LOOP = {
    "StartAt": "Check",
    "States": {
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.i", "NumericLessThan": 3, "Next": "Increment"}],
            "Default": "Done",
        },
        "Increment": {
            "Type": "Pass",
            "Parameters": {"i.$": "States.MathAdd($.i, 1)"},
            "Next": "Mark",
        },
        "Mark": {"Type": "Pass", "Result": 1, "ResultPath": "$.m", "Next": "Check"},
        "Done": {"Type": "Succeed"},
    },
}


@pytest.mark.parametrize("left", range(1, 12))
@pytest.mark.parametrize("compact", [True, False])
@pytest.mark.parametrize("limit", [None, 4])
def test_a_decision_stopped_at_any_state_leaves_the_same_state(
    monkeypatch: pytest.MonkeyPatch, left: int, compact: bool, limit: int | None
) -> None:
    # the run loop carries the frame a plan moved on outside the ready list; a decision
    # that stops there (its time budget spent, deferred, its transitions spent) has it back
    def decided(error: Exception) -> Any:
        state = new_execution(name="e", input={"i": 0}, now=1.0)
        budget = _Countdown(left, error)
        try:
            decision = decide(
                parse(LOOP),
                state,
                Start(),
                1.0,
                consume=True,
                time_budget=budget,
                compact=compact,
                budget=limit or 100,
            )
        except DecisionDeferred:
            return encode_state(state)  # what the loop left in the state it was given
        return encode_state(decision.state), decision.events, decision.commands

    for error in (BudgetExceeded("decision", 1.0), DecisionDeferred()):
        planned = decided(error)
        with monkeypatch.context() as general:
            _general(general)
            assert planned == decided(error)


@pytest.mark.parametrize("left", range(1, 10))
@pytest.mark.parametrize("compact", [True, False])
def test_a_budget_spent_as_a_planned_pass_ends_a_map_iteration_fails_as_the_general_one(
    left: int, compact: bool
) -> None:
    """review 35: the exit's frame_done ran outside the handler's error, so the cause lost
    the state's name ("An error occurred while executing the state 'P' ...")."""

    def failed(iteration: dict[str, Any]) -> Any:
        machine = {
            "StartAt": "M",
            "States": {
                "M": {
                    "Type": "Map",
                    "MaxConcurrency": 1,
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "INLINE"},
                        "StartAt": "P",
                        "States": {"P": iteration},
                    },
                    "End": True,
                }
            },
        }
        state = new_execution(name="x", input=[1, 2, 3], now=1000.0)
        decision = decide(
            parse(machine),
            state,
            Start(),
            1000.0,
            time_budget=_Countdown(left, BudgetExceeded("decision", 1.0), "check"),
            compact=compact,
        )
        return decision.state.status, decision.events

    planned = failed({"Type": "Pass", "End": True})
    general = failed({"Type": "Pass", "Assign": {}, "End": True})  # Assign: the general handler
    assert planned == general
