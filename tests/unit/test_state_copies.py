"""A parsed machine's copies and pickles leave the engine's caches behind (review 34).

The engine keeps, on a parsed state, its handler resolved once (``State.runner``) and,
on a Choice rule, its compiled condition (``ChoiceRule.test``): closures over the
fields they were made from. A copy whose fields are changed afterwards must run its own
fields, and a machine that has run must still pickle.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from typing import Any

import pytest
from stepflow.asl import parse
from stepflow.asl.machine import StateMachine
from stepflow.data.template import Template
from stepflow.testing import execute

from tests.unit.test_engine_outcomes import differential_tool

PARAMETERS = {
    "StartAt": "P",
    "States": {"P": {"Type": "Pass", "Parameters": {"v.$": "$.a"}, "End": True}},
}

CHOICE = {
    "StartAt": "C",
    "States": {
        "C": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.a", "NumericLessThan": 5, "Next": "Low"}],
            "Default": "High",
        },
        "Low": {"Type": "Pass", "Result": "low", "End": True},
        "High": {"Type": "Pass", "Result": "high", "End": True},
    },
}

PASS_WAIT_SUCCEED = {
    "StartAt": "P",
    "States": {
        "P": {"Type": "Pass", "Result": {"x": 1}, "ResultPath": "$.p", "Next": "W"},
        "W": {"Type": "Wait", "Seconds": 2, "Next": "S"},
        "S": {"Type": "Succeed"},
    },
}

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
            "Parameters": {"i.$": "States.MathAdd($.i, 1)", "s.$": "States.Format('{}', $.i)"},
            "Next": "Check",
        },
        "Done": {"Type": "Succeed"},
    },
}


def _outcome(machine: StateMachine, value: Any) -> str:
    result = execute(machine, value)
    events = [{k: v for k, v in e.items() if k != "timestamp"} for e in result.history]
    return json.dumps([result.status, result.output, result.error, result.cause, events])


@pytest.mark.parametrize("make", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))])
def test_a_copy_with_other_parameters_runs_its_own(make: Any) -> None:
    machine = parse(PARAMETERS)
    assert execute(machine, {"a": 1, "b": 2}).result == {"v": 1}  # the handler is cached
    copied = make(machine)
    object.__setattr__(copied.root.states["P"], "parameters", Template({"v.$": "$.b"}))
    assert execute(copied, {"a": 1, "b": 2}).result == {"v": 2}
    assert execute(machine, {"a": 1, "b": 2}).result == {"v": 1}


def test_a_shallow_copy_of_a_state_has_no_handler() -> None:
    machine = parse(PARAMETERS)
    execute(machine, {"a": 1})
    state = machine.root.states["P"]
    assert state.runner is not None
    assert copy.copy(state).runner is None
    assert copy.copy(state) == state


@pytest.mark.parametrize("make", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))])
def test_a_copy_with_another_rule_chooses_by_it(make: Any) -> None:
    machine = parse(CHOICE)
    assert execute(machine, {"a": 7}).result == "high"  # the rule's test is compiled and kept
    copied = make(machine)
    rule = copied.root.states["C"].choices[0]
    assert rule.test is None
    object.__setattr__(rule, "condition", dataclasses.replace(rule.condition, value=10))
    assert execute(copied, {"a": 7}).result == "low"
    assert execute(machine, {"a": 7}).result == "high"


@pytest.mark.parametrize("definition", [PASS_WAIT_SUCCEED, PARAMETERS, CHOICE, LOOP])
def test_a_machine_that_ran_pickles_and_runs_the_same(definition: dict[str, Any]) -> None:
    machine = parse(definition)
    value = {"a": 3, "b": 4, "i": 0}
    before = _outcome(machine, value)
    loaded = pickle.loads(pickle.dumps(machine))
    assert all(state.runner is None for state in loaded.root.states.values())
    assert _outcome(loaded, value) == before
    assert _outcome(machine, value) == before


def test_the_flows_of_the_differential_pickle_after_a_run() -> None:
    tool = differential_tool()
    ran = 0
    for case, definition, value in tool.cases(200, 11):
        try:
            machine = parse(definition)
        except Exception:  # a definition the parser refuses has nothing to pickle
            continue
        before = tool.digest(machine, value)  # generated ids and times masked
        assert tool.digest(pickle.loads(pickle.dumps(machine)), value) == before, case
        ran += 1
    assert ran >= 200
