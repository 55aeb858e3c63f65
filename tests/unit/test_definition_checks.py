"""What AWS checks in a definition and StepFlow now checks alike.

Credentials need a RoleArn; every bad field of a payload template is
reported; the three warnings ValidateStateMachineDefinition documents
(NO_DOLLAR, NO_PATH, PASS_RESULT_IS_STATIC); a filter on the root
(``$.[?(@.x > 0)]``) runs; the InvalidDefinition message is one line.
"""

from __future__ import annotations

from typing import Any

import pytest
from stepflow.asl import DefinitionError, Diagnostic, parse, validate
from stepflow.asl.diagnostics import one_line
from stepflow.integrations.validation import validate_definition
from stepflow.testing import execute

TASK = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": True}


def machine(state: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {**top, "StartAt": "A", "States": {"A": state}}


def found(definition: dict[str, Any], severity: str = "ERROR") -> list[tuple[str, str, str]]:
    return [(d.code, d.location, d.message) for d in validate(definition) if d.severity == severity]


# --- Credentials --------------------------------------------------------------------------


@pytest.mark.parametrize("credentials", [{}, {"Role": "arn:aws:iam::1:role/r"}])
def test_credentials_without_a_role_are_refused(credentials: dict[str, Any]) -> None:
    errors = found(machine({**TASK, "Credentials": credentials}))
    assert (
        "SCHEMA_VALIDATION_FAILED",
        "/States/A/Credentials",
        "The field 'RoleArn' is required but was missing",
    ) in errors
    if credentials:
        assert (
            "SCHEMA_VALIDATION_FAILED",
            "/States/A/Credentials",
            "Field 'Role' is not supported",
        ) in errors


def test_credentials_with_a_role_pass_in_both_languages() -> None:
    assert found(machine({**TASK, "Credentials": {"RoleArn": "arn:aws:iam::1:role/r"}})) == []
    assert found(machine({**TASK, "Credentials": {"RoleArn.$": "$.role"}})) == []
    jsonata = machine({**TASK, "Credentials": {"RoleArn": "{% $role %}"}}, QueryLanguage="JSONata")
    assert found(jsonata) == []
    wrong = machine({**TASK, "Credentials": {"RoleArn.$": "$.role"}}, QueryLanguage="JSONata")
    assert (
        "SCHEMA_VALIDATION_FAILED",
        "/States/A/Credentials",
        "Field 'RoleArn.$' is not supported",
    ) in found(wrong)


# --- every bad field of a template ----------------------------------------------------------


def test_every_bad_field_of_parameters_is_reported() -> None:
    parameters = {
        "first.$": "not a path",
        "fine.$": "$.ok",
        "nested": {"second.$": 5, "list": [{"third.$": "States.Nope("}]},
        "fourth.$": "$$$",
    }
    errors = found(machine({**TASK, "Parameters": parameters}))
    assert sorted(location for _, location, _ in errors) == [
        "/States/A/Parameters/first.$",
        "/States/A/Parameters/fourth.$",
        "/States/A/Parameters/nested/list/0/third.$",
        "/States/A/Parameters/nested/second.$",
    ]
    assert all(message.startswith("Invalid 'Parameters': ") for _, _, message in errors)
    selector = found(machine({**TASK, "ResultSelector": {"a.$": 1, "b.$": 2}}))
    assert [location for _, location, _ in selector] == [
        "/States/A/ResultSelector/a.$",
        "/States/A/ResultSelector/b.$",
    ]


# --- AWS's warnings ----------------------------------------------------------------------------


def test_no_dollar_for_a_path_or_call_without_dollar_suffix() -> None:
    parameters = {
        "id": "$.foo",
        "ctx": "$$.Execution.Id",
        "whole": "$",
        "nested": {"call": "States.Format('{}', $.x)", "items": [{"first": "$.items[0]"}]},
        "price": "$5.00",
        "text": "pay $.5 now",
        "money": "$USD",
        "ok.$": "$.foo",
    }
    warnings = found(machine({**TASK, "Parameters": parameters}), "WARNING")
    assert {(code, location) for code, location, _ in warnings} == {
        ("NO_DOLLAR", "/States/A/Parameters/id"),
        ("NO_DOLLAR", "/States/A/Parameters/ctx"),
        ("NO_DOLLAR", "/States/A/Parameters/whole"),
        ("NO_DOLLAR", "/States/A/Parameters/nested/call"),
        ("NO_DOLLAR", "/States/A/Parameters/nested/items/0/first"),
    }
    assert "name it 'id.$'" in next(m for _, loc, m in warnings if loc.endswith("/id"))
    for field in ("ResultSelector", "Assign"):
        warned = found(machine({**TASK, field: {"x": "$.y"}}), "WARNING")
        assert [(c, loc) for c, loc, _ in warned] == [("NO_DOLLAR", f"/States/A/{field}/x")]


def test_no_dollar_in_a_distributed_maps_reader_and_writer_parameters() -> None:
    processor = {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": "P",
        "States": {"P": {"Type": "Pass", "End": True}},
    }
    state = {
        "Type": "Map",
        "ItemProcessor": processor,
        "ItemReader": {
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "JSON"},
            "Parameters": {"Bucket": "$.bucket", "Key.$": "$.key"},
        },
        "ResultWriter": {
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "out", "Prefix": "$$.Execution.Name"},
        },
        "End": True,
    }
    warned = found(machine(state), "WARNING")
    assert [(code, location) for code, location, _ in warned] == [
        ("NO_DOLLAR", "/States/A/ItemReader/Parameters/Bucket"),
        ("NO_DOLLAR", "/States/A/ResultWriter/Parameters/Prefix"),
    ]
    assert "in 'ItemReader.Parameters'" in warned[0][2]
    assert found(machine(state)) == []


def test_pass_result_is_static() -> None:
    state = {
        "Type": "Pass",
        "Result": {"x.$": "$.y", "deep": [{"z.$": "$"}], "k": "$.v"},
        "End": True,
    }
    warnings = found(machine(state), "WARNING")
    assert [(code, location) for code, location, _ in warnings] == [
        ("PASS_RESULT_IS_STATIC", "/States/A/Result/x.$"),
        ("PASS_RESULT_IS_STATIC", "/States/A/Result/deep/0/z.$"),
    ]


def test_no_path_for_a_comparison_or_fail_field_holding_a_path() -> None:
    definition = {
        "StartAt": "C",
        "States": {
            "C": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.a", "StringEquals": "$.b", "Next": "F"},
                    {"Not": {"Variable": "$.a", "NumericEqualsPath": "$.n"}, "Next": "F"},
                    {"And": [{"Variable": "$.a", "StringMatches": "$.x*"}], "Next": "F"},
                ],
                "Default": "F",
            },
            "F": {"Type": "Fail", "Error": "$.error", "Cause": "States.Format('{}', $.c)"},
        },
    }
    warnings = found(definition, "WARNING")
    assert [(code, location) for code, location, _ in warnings] == [
        ("NO_PATH", "/States/C/Choices/0/StringEquals"),
        ("NO_PATH", "/States/F/Error"),
        ("NO_PATH", "/States/F/Cause"),
    ]
    assert found(definition) == []  # warnings only: the definition is valid


def test_warnings_reach_nested_machines_but_not_jsonata_states() -> None:
    inner = {"StartAt": "I", "States": {"I": {**TASK, "Parameters": {"x": "$.y"}}}}
    definition = machine(
        {"Type": "Parallel", "Branches": [inner], "End": True},
    )
    assert [loc for _, loc, _ in found(definition, "WARNING")] == [
        "/States/A/Branches/0/States/I/Parameters/x"
    ]
    mapped = machine({"Type": "Map", "ItemProcessor": inner, "End": True})
    assert [loc for _, loc, _ in found(mapped, "WARNING")] == [
        "/States/A/ItemProcessor/States/I/Parameters/x"
    ]
    jsonata = machine({**TASK, "Arguments": {"x": "$.y"}}, QueryLanguage="JSONata")
    assert found(jsonata, "WARNING") == []


def test_warnings_do_not_stop_a_run_and_reach_validate_definition() -> None:
    definition = machine({"Type": "Pass", "Parameters": {"x": "$.y"}, "End": True})
    assert execute(definition, {"y": 1}).result == {"x": "$.y"}  # as AWS: plain text
    codes = [(d.severity, d.code) for d in validate_definition(definition)]
    assert codes == [("WARNING", "NO_DOLLAR")]


# --- a filter on the root ----------------------------------------------------------------------


def test_a_root_filter_is_valid_and_selects_as_aws_does() -> None:
    definition = machine(
        {"Type": "Pass", "InputPath": "$.[?(@.x > 0)]", "End": True},
    )
    assert validate(definition) == []
    result = execute(definition, [{"x": 1}, {"x": -2}, {"x": 3}])
    assert result.succeeded and result.result == [{"x": 1}, {"x": 3}]
    whole = {"x": 1, "y": {"x": 2}}  # an object input is tested itself, as Jayway does
    assert execute(definition, whole).result == [whole]
    assert execute(definition, {"x": -1, "y": {"x": 2}}).result == []
    selector = machine(
        {"Type": "Pass", "Parameters": {"big.$": "$.items.[?(@.n >= 10)].n"}, "End": True}
    )
    assert execute(selector, {"items": [{"n": 5}, {"n": 10}, {"n": 20}]}).result == {
        "big": [10, 20]
    }


# --- the InvalidDefinition message ---------------------------------------------------------------


def test_the_one_line_message_lists_each_error_as_aws_does() -> None:
    diagnostics = [
        Diagnostic("/States/A/Next", "Missing 'Next' target: B", "MISSING_TRANSITION_TARGET"),
        Diagnostic("/States/A", "a warning", "NO_DOLLAR", "WARNING"),
        Diagnostic("", "The definition must be a JSON object"),
    ]
    assert one_line(diagnostics) == (
        "MISSING_TRANSITION_TARGET: Missing 'Next' target: B at /States/A/Next, "
        "SCHEMA_VALIDATION_FAILED: The definition must be a JSON object at /"
    )
    with pytest.raises(DefinitionError) as info:
        parse({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}})
    assert "\n" not in info.value.one_line() and " at /States/A/Next" in info.value.one_line()
