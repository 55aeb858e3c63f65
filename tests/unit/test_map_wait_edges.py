"""Inline Map limits and Wait durations at their edges, failing as AWS fails them.

The expected causes are AWS's (see docs/conformance.md, "Map and Wait edge
cases", for where each was recorded).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from stepflow.asl import DefinitionError, parse
from stepflow.engine import map_limits
from stepflow.errors import StatesError
from stepflow.testing import execute

PREFIX = "An error occurred while executing the state 'M' (entered at the event id #{}). "


def _map(field: str, value: Any, *, assign: bool = False) -> dict[str, Any]:
    """A Map whose ``field`` is ``value``; with ``assign`` it is read from a variable."""
    body = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    mapping: dict[str, Any] = {"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": body}
    if assign:
        mapping[field + "Path"] = "$limit"
        states: dict[str, Any] = {
            "A": {"Type": "Pass", "Assign": {"limit": value}, "Next": "M"},
            "M": {**mapping, "End": True},
        }
        return {"StartAt": "A", "States": states}
    mapping[field + "Path"] = "$.limit"
    return {"StartAt": "M", "States": {"M": {**mapping, "End": True}}}


def _run(field: str, value: Any, *, assign: bool = False) -> Any:
    return execute(_map(field, value, assign=assign), {"items": [1, 2], "limit": value})


FIELDS = ["MaxConcurrency", "ToleratedFailureCount", "ToleratedFailurePercentage"]


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("value", ["2", " 2", "+2", 0, 2])
@pytest.mark.parametrize("assign", [False, True])
def test_a_number_or_a_string_holding_one_is_accepted(field: str, value: Any, assign: bool) -> None:
    result = _run(field, value, assign=assign)
    assert (result.status, json.loads(result.output)) == ("SUCCEEDED", [1, 2])


@pytest.mark.parametrize(
    ("field", "kind"),
    [("MaxConcurrency", "integer"), ("ToleratedFailureCount", "integer")],
)
@pytest.mark.parametrize("value", ["2.5", "NoNumber", "", "2 2", "0x2", True, {}, 2.5, None])
def test_an_integer_field_refuses_anything_else(field: str, kind: str, value: Any) -> None:
    result = _run(field, value, assign=True)
    shown = map_limits.show(value)
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert result.cause == PREFIX.format(4) + (
        f'The {field}Path field refers to value "{shown}" which is not a valid {kind}: $limit'
    )


@pytest.mark.parametrize("value", ["2.5", 2.5, "1e1", " 7.25 "])
def test_the_percentage_accepts_fractions_also_in_strings(value: Any) -> None:
    result = _run("ToleratedFailurePercentage", value, assign=True)
    assert result.status == "SUCCEEDED"


@pytest.mark.parametrize("value", ["NoNumber", "nan", "inf", "1.2.3", False, [], {}])
def test_the_percentage_refuses_what_is_not_a_number(value: Any) -> None:
    result = _run("ToleratedFailurePercentage", value)
    shown = map_limits.show(value)
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert result.cause == PREFIX.format(2) + (
        f'The ToleratedFailurePercentagePath field refers to value "{shown}" which is not a '
        "valid float: $.limit"
    )


@pytest.mark.parametrize(
    ("field", "value", "cause"),
    [
        ("ToleratedFailureCount", -1, "ToleratedFailureCount cannot be negative."),
        ("ToleratedFailureCount", "-1", "ToleratedFailureCount cannot be negative."),
        ("ToleratedFailurePercentage", -1, "ToleratedFailurePercentage must be between 0 and 100."),
        (
            "ToleratedFailurePercentage",
            -1.1,
            "ToleratedFailurePercentage must be between 0 and 100.",
        ),
        (
            "ToleratedFailurePercentage",
            100.1,
            "ToleratedFailurePercentage must be between 0 and 100.",
        ),
        (
            "ToleratedFailurePercentage",
            "101",
            "ToleratedFailurePercentage must be between 0 and 100.",
        ),
        (
            "MaxConcurrency",
            -1,
            "Expected non-negative integer for MaxConcurrency, got '-1' instead.",
        ),
        (
            "MaxConcurrency",
            "-3",
            "Expected non-negative integer for MaxConcurrency, got '-3' instead.",
        ),
    ],
)
def test_out_of_range_paths_fail_at_run_time_with_aws_causes(
    field: str, value: Any, cause: str
) -> None:
    result = _run(field, value)
    assert (result.status, result.error, result.cause) == (
        "FAILED",
        "States.Runtime",
        PREFIX.format(2) + cause,
    )


def test_percentage_bounds_are_inclusive() -> None:
    assert _run("ToleratedFailurePercentage", 100).status == "SUCCEEDED"
    assert _run("ToleratedFailurePercentage", 0).status == "SUCCEEDED"


def test_where_each_path_failure_lands_in_the_history() -> None:
    """MaxConcurrencyPath fails before MapStateStarted, the tolerances after (as AWS)."""
    concurrency = _run("MaxConcurrency", -1)
    assert [e["type"] for e in concurrency.history] == [
        "ExecutionStarted",
        "MapStateEntered",
        "ExecutionFailed",
    ]
    count = _run("ToleratedFailureCount", -1)
    assert [e["type"] for e in count.history] == [
        "ExecutionStarted",
        "MapStateEntered",
        "MapStateStarted",
        "ExecutionFailed",
    ]


def test_a_string_limit_is_honoured_not_just_accepted() -> None:
    """ToleratedFailureCount "1" from a variable tolerates one failure and not two."""
    body = {
        "StartAt": "C",
        "States": {
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$", "NumericEquals": 0, "Next": "F"}],
                "Default": "S",
            },
            "F": {"Type": "Fail", "Error": "Bad"},
            "S": {"Type": "Succeed"},
        },
    }
    definition = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Assign": {"limit": "1"}, "Next": "M"},
            "M": {
                "Type": "Map",
                "ToleratedFailureCountPath": "$limit",
                "ItemProcessor": body,
                "End": True,
            },
        },
    }
    assert execute(definition, [0, 1, 1]).status == "SUCCEEDED"
    failed = execute(definition, [0, 0, 1])
    assert (failed.status, failed.error) == ("FAILED", "States.ExceedToleratedFailureThreshold")


def test_a_string_max_concurrency_limits_the_iterations_in_flight() -> None:
    events: list[dict[str, Any]] = []
    definition = _map("MaxConcurrency", "1", assign=True)
    result = execute(definition, {"items": [1, 2, 3]}, on_event=events.append)
    assert result.status == "SUCCEEDED"
    types = [e["type"] for e in events if e["type"].startswith("MapIteration")]
    # With one in flight, each iteration ends before the next starts.
    assert types == ["MapIterationStarted", "MapIterationSucceeded"] * 3


def _jsonata_map(field: str, expression: str) -> dict[str, Any]:
    body = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    return {
        "QueryLanguage": "JSONata",
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "Items": [1, 2],
                field: expression,
                "ItemProcessor": body,
                "End": True,
            }
        },
    }


@pytest.mark.parametrize(
    ("field", "expression", "cause"),
    [
        ("ToleratedFailureCount", "{% -1 %}", "ToleratedFailureCount cannot be negative."),
        (
            "ToleratedFailurePercentage",
            "{% 100.5 %}",
            "ToleratedFailurePercentage must be between 0 and 100.",
        ),
        (
            "MaxConcurrency",
            "{% -2 %}",
            "Expected non-negative integer for MaxConcurrency, got '-2' instead.",
        ),
    ],
)
def test_jsonata_limits_out_of_range(field: str, expression: str, cause: str) -> None:
    result = execute(_jsonata_map(field, expression), {})
    assert (result.status, result.error, result.cause) == (
        "FAILED",
        "States.QueryEvaluationError",
        PREFIX.format(2) + cause,
    )


@pytest.mark.parametrize(
    "field", ["MaxConcurrency", "ToleratedFailureCount", "ToleratedFailurePercentage"]
)
def test_jsonata_limits_accept_numeric_strings(field: str) -> None:
    assert execute(_jsonata_map(field, "{% '1' %}"), {}).status == "SUCCEEDED"
    bad = execute(_jsonata_map(field, "{% 'x' %}"), {})
    assert (bad.status, bad.error) == ("FAILED", "States.QueryEvaluationError")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("ToleratedFailureCount", -1, "ToleratedFailureCount"),
        ("ToleratedFailurePercentage", -1, "ToleratedFailurePercentage"),
        ("ToleratedFailurePercentage", 100.1, "ToleratedFailurePercentage"),
        ("MaxConcurrency", -1, "MaxConcurrency"),
        ("ToleratedFailureCount", "1", "ToleratedFailureCount"),
    ],
)
def test_out_of_range_literals_are_refused_when_the_definition_is_validated(
    field: str, value: Any, message: str
) -> None:
    body = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    definition = {
        "StartAt": "M",
        "States": {"M": {"Type": "Map", field: value, "ItemProcessor": body, "End": True}},
    }
    with pytest.raises(DefinitionError) as refused:
        parse(definition)
    assert message in str(refused.value)


def test_the_max_items_rule_is_aws_s_item_reader_failure() -> None:
    """MaxItemsPath (mapengine calls number() for it): a string is fine, negative is not."""
    assert map_limits.coerce("2", True) == 2
    map_limits.check_range(0, "MaxItems", "States.Runtime")
    map_limits.check_range(100_000_001, "MaxItems", "States.Runtime")  # clipped by the reader
    with pytest.raises(StatesError) as negative:
        map_limits.check_range(-1, "MaxItems", "States.Runtime")
    assert (negative.value.error, negative.value.cause) == (
        "States.ItemReaderFailed",
        "field MaxItems must be positive",
    )


# --- Wait --------------------------------------------------------------------------------


def _wait(field: str, value: Any) -> Any:
    definition = {
        "StartAt": "W",
        "States": {"W": {"Type": "Wait", field: "$.v", "End": True}},
    }
    return execute(definition, {"v": value})


WAIT_PREFIX = "An error occurred while executing the state 'W' (entered at the event id #2). "


@pytest.mark.parametrize(
    ("value", "cause"),
    [
        (-1, "The SecondsPath parameter references a negative value: $.v == -1"),
        (-1.5, "The SecondsPath parameter cannot be parsed as a long value: $.v == -1.5"),
        (1.5, "The SecondsPath parameter cannot be parsed as a long value: $.v == 1.5"),
        ("5", "The SecondsPath parameter cannot be parsed as a long value: $.v == 5"),
    ],
)
def test_seconds_path_edges(value: Any, cause: str) -> None:
    result = _wait("SecondsPath", value)
    assert (result.status, result.error, result.cause) == (
        "FAILED",
        "States.Runtime",
        WAIT_PREFIX + cause,
    )
    assert [e["type"] for e in result.history] == [
        "ExecutionStarted",
        "WaitStateEntered",
        "ExecutionFailed",
    ]


def test_seconds_path_zero_and_one_wait() -> None:
    assert _wait("SecondsPath", 0).status == "SUCCEEDED"
    assert _wait("SecondsPath", 1).status == "SUCCEEDED"


@pytest.mark.parametrize(
    "stamp",
    [
        "2016-12-05T21:29:29",  # no zone
        "2016-13-05T21:29:29Z",  # month 13
        "05-12-2016T21:29:29Z",  # not ISO
        "2016-12-05T21:29:29.000000",  # fraction, no zone
        "2016-12-05 21:29:29Z",  # space, not T
        "0000-01-01T00:00:00Z",  # year zero
    ],
)
def test_invalid_timestamps_fail(stamp: str) -> None:
    result = _wait("TimestampPath", stamp)
    assert (result.status, result.error, result.cause) == (
        "FAILED",
        "States.Runtime",
        WAIT_PREFIX + "The TimestampPath parameter does not reference a valid ISO-8601 "
        f"extended offset date-time format string: $.v == {stamp}",
    )


@pytest.mark.parametrize(
    "stamp",
    ["0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "2016-03-05T21:29:29.243167252Z"],
)
def test_a_timestamp_in_the_far_past_ends_the_wait_at_once(stamp: str) -> None:
    result = _wait("TimestampPath", stamp)
    assert result.status == "SUCCEEDED"
    assert [e["type"] for e in result.history][-2:] == ["WaitStateExited", "ExecutionSucceeded"]
