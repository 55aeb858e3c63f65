"""Behaviour of the engine through the in-memory driver: pure flow states."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from stepflow.testing import execute

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def machine(states: dict[str, Any], start: str | None = None, **top: Any) -> dict[str, Any]:
    return {"StartAt": start or next(iter(states)), "States": states, **top}


def test_pass_result_result_path_and_output_path() -> None:
    # GIVEN a Pass that writes its Result under $.r and outputs only $.r
    definition = machine(
        {
            "P": {
                "Type": "Pass",
                "Result": {"x": 1},
                "ResultPath": "$.r",
                "OutputPath": "$.r",
                "End": True,
            }
        }
    )
    # WHEN it runs
    result = execute(definition, {"keep": True})
    # THEN the output is the Result
    assert result.status == "SUCCEEDED"
    assert result.result == {"x": 1}


def test_input_path_and_parameters_with_context_object() -> None:
    definition = machine(
        {
            "P": {
                "Type": "Pass",
                "InputPath": "$.order",
                "Parameters": {"id.$": "$.id", "state.$": "$$.State.Name", "fixed": [1, {"a": 2}]},
                "End": True,
            }
        }
    )
    result = execute(definition, {"order": {"id": 7}})
    assert result.result == {"id": 7, "state": "P", "fixed": [1, {"a": 2}]}


def test_result_path_null_keeps_input_and_output_path_null_gives_empty_object() -> None:
    definition = machine(
        {
            "A": {"Type": "Pass", "Result": 5, "ResultPath": None, "Next": "B"},
            "B": {"Type": "Pass", "OutputPath": None, "End": True},
        }
    )
    result = execute(definition, {"v": 1})
    assert result.result == {}
    entered = [e for e in result.history if e["type"] == "PassStateEntered"]
    assert entered[1]["stateEnteredEventDetails"]["input"] == '{"v":1}'


@pytest.mark.parametrize(
    ("rule", "value", "matched"),
    [
        ({"NumericGreaterThan": 3}, 4, True),
        ({"NumericGreaterThan": 3}, 3, False),
        ({"NumericEquals": 1}, True, False),
        ({"StringEquals": "a"}, "a", True),
        ({"StringMatches": "log-*.txt"}, "log-2024.txt", True),
        ({"StringMatches": "a\\*b"}, "a*b", True),
        ({"StringMatches": "a\\*b"}, "axb", False),
        ({"BooleanEquals": False}, False, True),
        ({"TimestampLessThan": "2024-01-02T00:00:00Z"}, "2024-01-01T23:59:59.5+00:00", True),
        ({"IsNull": True}, None, True),
        ({"IsNumeric": True}, "1", False),
        ({"IsString": True}, "1", True),
        ({"IsTimestamp": True}, "2024-01-01T00:00:00Z", True),
        ({"IsTimestamp": True}, "2024-01-01", False),
    ],
)
def test_choice_comparisons(rule: dict[str, Any], value: Any, matched: bool) -> None:
    definition = machine(
        {
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.v", **rule, "Next": "Yes"}],
                "Default": "No",
            },
            "Yes": {"Type": "Succeed"},
            "No": {"Type": "Succeed"},
        }
    )
    result = execute(definition, {"v": value})
    assert result.states_entered()[-1] == ("Yes" if matched else "No")


def test_choice_boolean_combinators_and_path_comparison() -> None:
    definition = machine(
        {
            "C": {
                "Type": "Choice",
                "Choices": [
                    {
                        "And": [
                            {"Variable": "$.a", "NumericLessThanPath": "$.b"},
                            {"Not": {"Variable": "$.c", "IsPresent": True}},
                            {
                                "Or": [
                                    {"Variable": "$.s", "StringEquals": "x"},
                                    {"Variable": "$.s", "StringEquals": "y"},
                                ]
                            },
                        ],
                        "Next": "Yes",
                    }
                ],
                "Default": "No",
            },
            "Yes": {"Type": "Succeed"},
            "No": {"Type": "Succeed"},
        }
    )
    assert execute(definition, {"a": 1, "b": 2, "s": "y"}).states_entered()[-1] == "Yes"
    assert execute(definition, {"a": 1, "b": 2, "s": "y", "c": 0}).states_entered()[-1] == "No"


def test_choice_without_match_or_default_fails() -> None:
    definition = machine(
        {
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.v", "IsNull": True, "Next": "S"}]},
            "S": {"Type": "Succeed"},
        }
    )
    result = execute(definition, {"v": 1})
    assert (result.status, result.error) == ("FAILED", "States.NoChoiceMatched")


def test_choice_on_missing_variable_is_a_runtime_error() -> None:
    definition = machine(
        {
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.nope", "IsNull": True, "Next": "S"}],
                "Default": "S",
            },
            "S": {"Type": "Succeed"},
        }
    )
    result = execute(definition, {})
    assert result.error == "States.Runtime"
    assert "entered at the event id #2" in (result.cause or "")


def test_wait_of_a_year_takes_no_real_time_and_advances_the_virtual_clock() -> None:
    definition = machine(
        {
            "W": {"Type": "Wait", "Seconds": 365 * 24 * 3600, "Next": "Done"},
            "Done": {"Type": "Succeed"},
        }
    )
    result = execute(definition, {}, start_time=T0)
    assert result.status == "SUCCEEDED"
    exited = next(e for e in result.history if e["type"] == "WaitStateExited")
    assert exited["timestamp"] - T0.timestamp() == 365 * 24 * 3600


def test_wait_until_timestamp_path_and_bad_timestamp() -> None:
    definition = machine(
        {"W": {"Type": "Wait", "TimestampPath": "$.t", "Next": "Done"}, "Done": {"Type": "Succeed"}}
    )
    ok = execute(definition, {"t": "2025-01-01T01:00:00Z"}, start_time=T0)
    assert ok.history[-1]["timestamp"] == T0.timestamp() + 3600
    bad = execute(definition, {"t": "tomorrow"}, start_time=T0)
    assert bad.error == "States.Runtime"
    assert "TimestampPath parameter does not reference a valid ISO-8601" in (bad.cause or "")


def test_execution_timeout_times_the_execution_out() -> None:
    definition = machine({"W": {"Type": "Wait", "Seconds": 100, "End": True}}, TimeoutSeconds=10)
    result = execute(definition, {}, start_time=T0)
    assert (result.status, result.error) == ("TIMED_OUT", "States.Timeout")
    assert result.history[-1]["type"] == "ExecutionTimedOut"
    assert result.history[-1]["timestamp"] == T0.timestamp() + 10


def test_fail_state_with_error_path_and_cause_intrinsic() -> None:
    definition = machine(
        {
            "F": {
                "Type": "Fail",
                "ErrorPath": "$.code",
                "CausePath": "States.Format('bad {}', $.what)",
            }
        }
    )
    result = execute(definition, {"code": "E42", "what": "thing"})
    assert (result.status, result.error, result.cause) == ("FAILED", "E42", "bad thing")
    assert [e["type"] for e in result.history] == [
        "ExecutionStarted",
        "FailStateEntered",
        "ExecutionFailed",
    ]


def test_history_events_chain_ids_and_previous_ids() -> None:
    definition = machine({"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Succeed"}})
    history = execute(definition, {}).history
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    assert [e["previousEventId"] for e in history] == list(range(0, len(history)))
    assert [e["type"] for e in history] == [
        "ExecutionStarted",
        "PassStateEntered",
        "PassStateExited",
        "SucceedStateEntered",
        "SucceedStateExited",
        "ExecutionSucceeded",
    ]


def test_a_long_pure_loop_is_split_into_bounded_decisions() -> None:
    definition = machine(
        {
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.i", "NumericLessThan": 30000, "Next": "Inc"}],
                "Default": "Done",
            },
            "Inc": {"Type": "Pass", "Parameters": {"i.$": "States.MathAdd($.i, 1)"}, "Next": "C"},
            "Done": {"Type": "Succeed"},
        }
    )
    result = execute(definition, {"i": 0})
    assert result.result == {"i": 30000}
