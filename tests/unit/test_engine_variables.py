"""Workflow variables and JSONata states through the in-memory driver."""

from __future__ import annotations

import json
from typing import Any

from stepflow.testing import execute

FN = "arn:aws:lambda:us-east-1:123456789012:function:"


def test_jsonpath_assign_uses_the_result_and_later_states_read_it() -> None:
    definition = {
        "StartAt": "A",
        "States": {
            "A": {
                "Type": "Pass",
                "Result": {"n": 5},
                "Assign": {"n.$": "$.n", "tag": "t"},
                "Next": "B",
            },
            "B": {
                "Type": "Pass",
                "Parameters": {"sum.$": "States.MathAdd($n, 1)", "tag.$": "$tag"},
                "End": True,
            },
        },
    }
    result = execute(definition, {})
    assert result.result == {"sum": 6, "tag": "t"}
    exited = next(e for e in result.history if e["type"] == "PassStateExited")
    assert exited["stateExitedEventDetails"]["assignedVariables"] == {"n": "5", "tag": '"t"'}


def test_assign_and_output_see_the_variables_from_before_the_state() -> None:
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "Init",
        "States": {
            "Init": {"Type": "Pass", "Assign": {"x": 1}, "Next": "Bump"},
            "Bump": {
                "Type": "Pass",
                "Assign": {"x": "{% $x + 1 %}", "old": "{% $x %}"},
                "Output": {"seen": "{% $x %}"},
                "Next": "Read",
            },
            "Read": {"Type": "Pass", "Output": {"x": "{% $x %}", "old": "{% $old %}"}, "End": True},
        },
    }
    result = execute(definition, {})
    assert result.result == {"x": 2, "old": 1}
    outputs = [e for e in result.history if e["type"] == "PassStateExited"]
    assert json.loads(outputs[1]["stateExitedEventDetails"]["output"]) == {"seen": 1}


def test_branches_read_outer_variables_and_their_assignments_do_not_leak() -> None:
    branch = {
        "StartAt": "In",
        "States": {
            "In": {"Type": "Pass", "Assign": {"x": "inner"}, "Next": "Read"},
            "Read": {"Type": "Pass", "Parameters": {"x.$": "$x", "outer.$": "$o"}, "End": True},
        },
    }
    definition = {
        "StartAt": "Set",
        "States": {
            "Set": {"Type": "Pass", "Assign": {"x": "outer", "o": 1}, "Next": "P"},
            "P": {"Type": "Parallel", "Branches": [branch, branch], "Next": "After"},
            "After": {"Type": "Pass", "Parameters": {"x.$": "$x", "branches.$": "$"}, "End": True},
        },
    }
    result = execute(definition, {})
    assert result.result == {
        "x": "outer",
        "branches": [{"x": "inner", "outer": 1}, {"x": "inner", "outer": 1}],
    }


def test_map_iterations_read_outer_variables() -> None:
    definition = {
        "StartAt": "Set",
        "States": {
            "Set": {"Type": "Pass", "Assign": {"prefix": "item-"}, "Next": "M"},
            "M": {
                "Type": "Map",
                "ItemProcessor": {
                    "StartAt": "F",
                    "States": {
                        "F": {
                            "Type": "Pass",
                            "Parameters": {"v.$": "States.Format('{}{}', $prefix, $)"},
                            "End": True,
                        }
                    },
                },
                "End": True,
            },
        },
    }
    assert execute(definition, [1, 2]).result == [{"v": "item-1"}, {"v": "item-2"}]


def test_jsonata_task_arguments_output_and_result() -> None:
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": FN + "square",
                "Arguments": {"n": "{% $states.input.value * 2 %}"},
                "Assign": {"last": "{% $states.result %}"},
                "Output": {"squared": "{% $states.result %}", "input": "{% $states.input %}"},
                "End": True,
            }
        },
    }
    result = execute(definition, {"value": 3}, handlers={"square": lambda p: p["n"] ** 2})
    assert result.result == {"squared": 36, "input": {"value": 3}}


def test_jsonata_catch_output_and_assign_see_the_error_output() -> None:
    def fail(_: Any) -> Any:
        raise ValueError("nope")

    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": FN + "fail",
                "Catch": [
                    {
                        "ErrorEquals": ["States.ALL"],
                        "Assign": {"reason": "{% $states.errorOutput.Cause %}"},
                        "Output": {"error": "{% $states.errorOutput.Error %}"},
                        "Next": "Report",
                    }
                ],
                "End": True,
            },
            "Report": {
                "Type": "Pass",
                "Output": {"error": "{% $states.input.error %}", "reason": "{% $reason %}"},
                "End": True,
            },
        },
    }
    result = execute(definition, {}, handlers={"fail": fail})
    assert result.result == {"error": "ValueError", "reason": "nope"}


def test_jsonata_choice_rule_assign_wins_over_the_default_assign() -> None:
    def run(flag: bool) -> Any:
        definition = {
            "QueryLanguage": "JSONata",
            "StartAt": "C",
            "States": {
                "C": {
                    "Type": "Choice",
                    "Choices": [
                        {
                            "Condition": "{% $states.input.flag %}",
                            "Assign": {"path": "rule"},
                            "Next": "Out",
                        }
                    ],
                    "Default": "Out",
                    "Assign": {"path": "default"},
                },
                "Out": {"Type": "Pass", "Output": "{% $path %}", "End": True},
            },
        }
        return execute(definition, {"flag": flag}).result

    assert (run(True), run(False)) == ("rule", "default")


def test_jsonata_condition_must_be_boolean() -> None:
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "C",
        "States": {
            "C": {
                "Type": "Choice",
                "Choices": [{"Condition": "{% $states.input.v %}", "Next": "S"}],
                "Default": "S",
            },
            "S": {"Type": "Succeed"},
        },
    }
    result = execute(definition, {"v": 3})
    assert result.error == "States.QueryEvaluationError"
    assert "EvaluationFailed" in [e["type"] for e in result.history]


def test_jsonata_wait_seconds_and_map_items() -> None:
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "W",
        "States": {
            "W": {"Type": "Wait", "Seconds": "{% $states.input.delay %}", "Next": "M"},
            "M": {
                "Type": "Map",
                "Items": "{% $states.input.xs %}",
                "ItemSelector": {
                    "v": "{% $states.context.Map.Item.Value %}",
                    "i": "{% $states.context.Map.Item.Index %}",
                },
                "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
                "Output": "{% $states.result.(v * 10 + i) %}",
                "End": True,
            },
        },
    }
    result = execute(definition, {"delay": 30, "xs": [1, 2]})
    assert result.result == [10, 21]
    assert result.history[-1]["timestamp"] - result.history[0]["timestamp"] == 30


def test_an_oversized_assignment_fails_the_state() -> None:
    definition = {
        "StartAt": "A",
        "States": {"A": {"Type": "Pass", "Assign": {"big.$": "$.blob"}, "End": True}},
    }
    result = execute(definition, {"blob": "x" * (256 * 1024 + 1)})
    assert (result.status, result.error) == ("FAILED", "States.DataLimitExceeded")
