"""The ASL parser: nodes built from valid definitions, and one diagnostic per broken rule."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stepflow.asl import (
    And,
    ChoiceState,
    Comparison,
    DefinitionError,
    Diagnostic,
    FailState,
    JSONataCondition,
    MapState,
    Not,
    Or,
    ParallelState,
    PassState,
    StateMachine,
    TaskState,
    WaitState,
    parse,
    validate,
)
from stepflow.asl.states.base import MISSING, ROOT_PATH
from stepflow.data.template import Template

FN = "arn:aws:lambda:us-east-1:123456789012:function:work"
SCHEMA = "SCHEMA_VALIDATION_FAILED"
INTRINSIC_CALL = re.compile(r"States\.[A-Za-z0-9]+\(")
CONFORMANCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "conformance"


def machine(*states: tuple[str, Any], **top: Any) -> dict[str, Any]:
    """A definition whose StartAt is the first state given."""
    return {"StartAt": states[0][0], "States": dict(states), **top}


def errors(definition: Any) -> list[Diagnostic]:
    return [d for d in validate(definition) if d.severity == "ERROR"]


def task(**fields: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": FN, "End": True, **fields}


def pass_(**fields: Any) -> dict[str, Any]:
    return {"Type": "Pass", "End": True, **fields}


# --- valid definitions ----------------------------------------------------------------

FULL_JSONPATH: dict[str, Any] = {
    "Comment": "everything",
    "Version": "1.0",
    "TimeoutSeconds": 300,
    "StartAt": "P",
    "States": {
        "P": {
            "Type": "Pass",
            "InputPath": "$.in",
            "OutputPath": None,
            "Parameters": {"a.$": "$.x", "b": [1, {"c.$": "$$.Execution.Id"}]},
            "ResultPath": "$.out",
            "Assign": {"v.$": "$.x", "k": 1},
            "Next": "T",
        },
        "T": {
            "Type": "Task",
            "Resource": FN,
            "ResultSelector": {"r.$": "$.Payload"},
            "ResultPath": None,
            "TimeoutSecondsPath": "$.timeout",
            "HeartbeatSeconds": 10,
            "Credentials": {"RoleArn.$": "$.role"},
            "Retry": [
                {"ErrorEquals": ["A", "B"], "IntervalSeconds": 2, "MaxAttempts": 0},
                {
                    "ErrorEquals": ["States.ALL"],
                    "BackoffRate": 1.5,
                    "MaxDelaySeconds": 9,
                    "JitterStrategy": "FULL",
                },
            ],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": "C"}],
            "Next": "C",
        },
        "C": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.n", "NumericGreaterThanPath": "$.m", "Next": "W"},
                {
                    "And": [
                        {"Variable": "$.s", "StringMatches": "a*"},
                        {"Not": {"Variable": "$.b", "IsNull": True}},
                        {"Or": [{"Variable": "$.t", "BooleanEquals": False}]},
                    ],
                    "Next": "Par",
                },
            ],
            "Default": "F",
        },
        "W": {"Type": "Wait", "Timestamp": "2016-03-14T01:59:00Z", "Next": "Par"},
        "Par": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "X", "States": {"X": {"Type": "Succeed"}}},
                {
                    "StartAt": "M",
                    "States": {
                        "M": {
                            "Type": "Map",
                            "ItemsPath": "$.items",
                            "Parameters": {"i.$": "$$.Map.Item.Value"},
                            "Iterator": {
                                "StartAt": "Y",
                                "States": {"Y": {"Type": "Pass", "End": True}},
                            },
                            "MaxConcurrency": 2,
                            "ToleratedFailurePercentage": 12.5,
                            "End": True,
                        }
                    },
                },
            ],
            "Next": "Map",
        },
        "Map": {
            "Type": "Map",
            "ItemSelector": {"v.$": "$$.Map.Item.Value"},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                "StartAt": "Z",
                "States": {"Z": {"Type": "Pass", "End": True}},
            },
            "MaxConcurrencyPath": "$.mc",
            "ToleratedFailureCount": 3,
            "Label": "MyMap",
            "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "Parameters": {}},
            "Next": "S",
        },
        "S": {"Type": "Succeed"},
        "F": {"Type": "Fail", "ErrorPath": "$.e", "CausePath": "States.Format('{}', $.c)"},
    },
}


def test_a_full_jsonpath_definition_builds_every_node() -> None:
    sm = parse(json.dumps(FULL_JSONPATH))
    assert isinstance(sm, StateMachine)
    assert (sm.comment, sm.version, sm.timeout_seconds) == ("everything", "1.0", 300)
    assert sm.root.id == "" and sm.root.start_at == "P"
    assert set(sm.machines) == {"", "/Par/0", "/Par/1", "/Par/1/M", "/Map"}
    assert sm.machines[""] is sm.root

    p = sm.root.states["P"]
    assert isinstance(p, PassState)
    assert p.input_path is not None and p.input_path.text == "$.in"
    assert p.output_path is None
    assert isinstance(p.parameters, Template)
    assert p.result_path is not None and p.result_path.steps == ("out",)
    assert p.assign == {"v.$": "$.x", "k": 1}
    assert p.next == "T" and not p.end

    t = sm.root.states["T"]
    assert isinstance(t, TaskState)
    assert t.resource == FN and t.result_path is None and t.input_path == ROOT_PATH
    assert t.timeout_seconds is None and t.timeout_seconds_path is not None
    assert t.heartbeat_seconds == 10
    assert t.credentials == {"RoleArn.$": "$.role"}
    assert [r.error_equals for r in t.retry] == [("A", "B"), ("States.ALL",)]
    assert (t.retry[0].interval_seconds, t.retry[0].max_attempts) == (2, 0)
    assert (t.retry[1].backoff_rate, t.retry[1].max_delay_seconds) == (1.5, 9)
    assert t.retry[1].jitter_strategy == "FULL"
    (catcher,) = t.catch
    assert catcher.next == "C" and catcher.result_path is not None
    assert catcher.result_path.text == "$.err"

    c = sm.root.states["C"]
    assert isinstance(c, ChoiceState) and c.default == "F"
    first, second = c.choices
    assert first.next == "W"
    assert isinstance(first.condition, Comparison)
    assert first.condition.operator == "NumericGreaterThan" and first.condition.value_is_path
    assert first.condition.value.text == "$.m"
    assert isinstance(second.condition, And)
    matches, negation, either = second.condition.rules
    assert isinstance(matches, Comparison) and matches.value == "a*"
    assert isinstance(negation, Not) and isinstance(either, Or)

    w = sm.root.states["W"]
    assert isinstance(w, WaitState) and w.timestamp == "2016-03-14T01:59:00Z"

    par = sm.root.states["Par"]
    assert isinstance(par, ParallelState)
    assert [b.id for b in par.branches] == ["/Par/0", "/Par/1"]
    inner = par.branches[1].states["M"]
    assert isinstance(inner, MapState)
    assert inner.item_processor.id == "/Par/1/M" and inner.processor_mode == "INLINE"
    assert isinstance(inner.item_selector, Template)
    assert inner.item_selector_raw == {"i.$": "$$.Map.Item.Value"}
    assert inner.items_path is not None and inner.items_path.text == "$.items"
    assert (inner.max_concurrency, inner.tolerated_failure_percentage) == (2, 12.5)

    m = sm.root.states["Map"]
    assert isinstance(m, MapState)
    assert m.processor_mode == "DISTRIBUTED" and m.label == "MyMap"
    assert m.max_concurrency == 0 and m.max_concurrency_path is not None
    assert m.tolerated_failure_count == 3
    assert m.item_reader is not None and m.execution_type == "EXPRESS"
    assert m.item_reader.resource == "arn:aws:states:::s3:getObject"
    assert m.item_reader.parameters_raw == {}

    f = sm.root.states["F"]
    assert isinstance(f, FailState)
    assert f.error_path == "$.e" and f.cause_path == "States.Format('{}', $.c)"
    assert all(s.query_language == "JSONPath" for s in sm.root.states.values())
    assert sm.root.states["S"].is_terminal


FULL_JSONATA: dict[str, Any] = {
    "QueryLanguage": "JSONata",
    "StartAt": "P",
    "States": {
        "P": {
            "Type": "Pass",
            "Output": {"x": "{% $states.input.x %}", "lit": 1},
            "Assign": {"v": "{% $states.input.v %}"},
            "Next": "T",
        },
        "T": {
            "Type": "Task",
            "Resource": FN,
            "Arguments": "{% $states.input %}",
            "TimeoutSeconds": "{% $t %}",
            "Catch": [
                {"ErrorEquals": ["States.ALL"], "Output": "{% $states.errorOutput %}", "Next": "C"}
            ],
            "Next": "C",
        },
        "C": {
            "Type": "Choice",
            "Choices": [
                {"Condition": "{% $v > 1 %}", "Next": "W", "Output": {"a": 1}, "Assign": {"z": 2}},
                {"Condition": True, "Next": "M"},
            ],
            "Default": "F",
        },
        "W": {"Type": "Wait", "Seconds": "{% $v %}", "Next": "M"},
        "M": {
            "Type": "Map",
            "Items": "{% [1, 2] %}",
            "ItemSelector": {"v": "{% $states.context.Map.Item.Value %}"},
            "MaxConcurrency": "{% 1 %}",
            "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Succeed"}}},
            "Next": "S",
        },
        "S": {"Type": "Succeed", "Output": "{% 'done' %}"},
        "F": {"Type": "Fail", "Error": "{% 'E' %}", "Cause": "plain"},
    },
}


def test_a_jsonata_definition_keeps_expressions_raw() -> None:
    sm = parse(FULL_JSONATA)
    assert sm.query_language == "JSONata"
    assert {m.query_language for m in sm.machines.values()} == {"JSONata"}
    states = sm.root.states
    assert all(s.query_language == "JSONata" for s in states.values())
    assert states["P"].output == {"x": "{% $states.input.x %}", "lit": 1}
    assert states["P"].assign == {"v": "{% $states.input.v %}"}
    t = states["T"]
    assert isinstance(t, TaskState)
    assert t.arguments == "{% $states.input %}" and t.timeout_seconds == "{% $t %}"
    assert t.parameters is None and t.catch[0].output == "{% $states.errorOutput %}"
    c = states["C"]
    assert isinstance(c, ChoiceState)
    assert c.choices[0].condition == JSONataCondition("{% $v > 1 %}")
    assert (c.choices[0].output, c.choices[0].assign) == ({"a": 1}, {"z": 2})
    assert c.choices[1].condition == JSONataCondition("{% true %}")
    assert c.choices[1].output is MISSING
    w = states["W"]
    assert isinstance(w, WaitState) and w.seconds == "{% $v %}"
    m = states["M"]
    assert isinstance(m, MapState)
    assert m.items == "{% [1, 2] %}" and m.max_concurrency == "{% 1 %}"
    assert m.item_selector is None
    assert m.item_selector_raw == {"v": "{% $states.context.Map.Item.Value %}"}
    f = states["F"]
    assert isinstance(f, FailState) and (f.error, f.cause) == ("{% 'E' %}", "plain")


def test_a_jsonpath_machine_may_hold_jsonata_states_and_nested_states_inherit_the_top() -> None:
    sm = parse(
        machine(
            ("A", pass_(QueryLanguage="JSONata", Output="{% 1 %}", Next="M", End=False)),
            (
                "M",
                {
                    "Type": "Map",
                    "QueryLanguage": "JSONata",
                    "ItemProcessor": {
                        "StartAt": "I",
                        "States": {"I": pass_(InputPath="$.a")},
                    },
                    "End": True,
                },
            ),
        )
    )
    assert sm.root.states["A"].query_language == "JSONata"
    assert sm.root.states["M"].query_language == "JSONata"
    inner = sm.machines["/M"].states["I"]
    assert inner.query_language == "JSONPath"
    assert inner.input_path is not None and inner.input_path.text == "$.a"


def test_parse_accepts_text_and_mappings_alike() -> None:
    definition = machine(("A", pass_(Result={"a": [1, 2]})))
    from_text, from_dict = parse(json.dumps(definition)), parse(definition)
    assert from_text.root.states["A"] == from_dict.root.states["A"]


def test_state_names_may_repeat_across_branches_with_a_warning() -> None:
    branch = {"StartAt": "X", "States": {"X": {"Type": "Succeed"}}}
    definition = machine(("P", {"Type": "Parallel", "Branches": [branch, branch], "End": True}))
    sm = parse(definition)
    assert set(sm.machines) == {"", "/P/0", "/P/1"}
    (warning,) = validate(definition)
    assert warning.severity == "WARNING" and warning.code == "DUPLICATE_STATE_NAME"
    assert warning.location == "/States/P/Branches/1/States/X"


def test_an_intrinsic_in_parameters_compiles() -> None:
    """Needs ``stepflow.data.intrinsics`` (fails while it is still a stub)."""
    definition = machine(
        ("A", pass_(Parameters={"m.$": "States.Format('{} and {}', $.a, States.ArrayLength($.b))"}))
    )
    assert errors(definition) == []


def test_the_three_problems_of_a_definition_are_all_reported() -> None:
    definition = machine(
        ("A", pass_(ResultPath="$.a[*]", Next="B", End=False)),
        ("B", task(Retry=[{"ErrorEquals": ["X"], "MaxAttempts": -1}])),
        ("C", {"Type": "Succeed"}),
    )
    found = {(d.location, d.code) for d in errors(definition)}
    assert found == {
        ("/States/A/ResultPath", SCHEMA),
        ("/States/B/Retry/0/MaxAttempts", SCHEMA),
        ("/States/C", "MISSING_TRANSITION_TARGET"),
    }
    with pytest.raises(DefinitionError) as caught:
        parse(definition)
    assert len(caught.value.diagnostics) == 3
    assert "3 error(s)" in str(caught.value)


# --- the definition itself ------------------------------------------------------------


def test_invalid_json_text() -> None:
    (d,) = validate('{"StartAt": "A", ')
    assert d.code == "INVALID_JSON_DESCRIPTION" and d.location == ""


@pytest.mark.parametrize("text", ['{"a": NaN}', "[1, Infinity]"])
def test_non_finite_numbers_are_not_json(text: str) -> None:
    assert [d.code for d in validate(text)] == ["INVALID_JSON_DESCRIPTION"]


def test_an_empty_definition() -> None:
    assert [d.code for d in validate("  ")] == ["MISSING_DESCRIPTION"]


@pytest.mark.parametrize("definition", ["[]", "1", "null", '"x"'])
def test_a_definition_must_be_an_object(definition: str) -> None:
    (d,) = validate(definition)
    assert (d.location, d.code) == ("", SCHEMA) and "must be a JSON object" in d.message


def test_duplicate_state_names_in_the_text() -> None:
    text = '{"StartAt": "A", "States": {"A": {"Type": "Succeed"}, "A": {"Type": "Succeed"}}}'
    (d,) = errors(text)
    assert (d.location, d.code) == ("/States/A", "DUPLICATE_STATE_NAME")


def test_a_machine_that_cannot_end() -> None:
    definition = machine(("A", {"Type": "Pass", "Next": "B"}), ("B", {"Type": "Pass", "Next": "A"}))
    (d,) = errors(definition)
    assert (d.location, d.code) == ("", "MISSING_END_STATE")
    assert "no terminal state" in d.message


# --- one rule per case ------------------------------------------------------------------


def _case(
    name: str,
    definition: Any,
    location: str,
    fragment: str,
    code: str = SCHEMA,
) -> Any:
    return pytest.param(definition, location, fragment, code, id=name)


def _one(state: dict[str, Any]) -> dict[str, Any]:
    return machine(("A", state))


def _map(**fields: Any) -> dict[str, Any]:
    processor = {"StartAt": "B", "States": {"B": pass_()}}
    return _one({"Type": "Map", "ItemProcessor": processor, "End": True, **fields})


def _choice(*rules: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return machine(
        ("C", {"Type": "Choice", "Choices": list(rules), **fields}), ("D", {"Type": "Succeed"})
    )


def _jsonata(state: dict[str, Any]) -> dict[str, Any]:
    return machine(("A", state), QueryLanguage="JSONata")


def _nested_retry(retrier: dict[str, Any]) -> dict[str, Any]:
    inner = {"StartAt": "B", "States": {"B": task(Retry=[retrier])}}
    return _one({"Type": "Map", "ItemProcessor": inner, "End": True})


CASES = [
    # top level
    _case("no StartAt", {"States": {"A": pass_()}}, "", "requires the field 'StartAt'"),
    _case("no States", {"StartAt": "A"}, "", "requires the field 'States'"),
    _case("empty States", {"StartAt": "A", "States": {}}, "/States", "at least one state"),
    _case("States not object", {"StartAt": "A", "States": []}, "/States", "must be an object"),
    _case(
        "StartAt target",
        machine(("A", pass_()), StartAt="Z"),
        "/StartAt",
        "'StartAt' target: Z",
        "MISSING_TRANSITION_TARGET",
    ),
    _case("StartAt type", machine(("A", pass_()), StartAt=1), "/StartAt", "must be a string"),
    _case("timeout", machine(("A", pass_()), TimeoutSeconds=0), "/TimeoutSeconds", "between 1"),
    _case(
        "timeout type", machine(("A", pass_()), TimeoutSeconds="5"), "/TimeoutSeconds", "integer"
    ),
    _case("version", machine(("A", pass_()), Version=1), "/Version", "must be a string"),
    _case("comment", machine(("A", pass_()), Comment=[]), "/Comment", "must be a string"),
    _case(
        "query language",
        machine(("A", pass_()), QueryLanguage="XPath"),
        "/QueryLanguage",
        "one of the following: [JSONPath, JSONata]",
    ),
    _case("unknown top field", machine(("A", pass_()), Foo=1), "", "Field 'Foo' is not supported"),
    # states in general
    _case("state not object", machine(("A", [])), "/States/A", "must be an object"),
    _case("no Type", _one({"End": True}), "/States/A", "requires the field 'Type'"),
    _case("bad Type", _one({"Type": "Sleep", "End": True}), "/States/A/Type", "must be one of"),
    _case(
        "long name",
        machine(("N" * 81, pass_())),
        "/States/" + "N" * 81,
        "at most 80",
        "INVALID_STATE_NAME",
    ),
    _case("unknown field", _one(pass_(Foo=1)), "/States/A", "Field 'Foo' is not supported"),
    _case("Retry on Pass", _one(pass_(Retry=[])), "/States/A", "Field 'Retry' is not supported"),
    _case(
        "TimeoutSeconds on Map",
        _map(TimeoutSeconds=5),
        "/States/A",
        "Field 'TimeoutSeconds' is not supported",
    ),
    _case(
        "Assign on Succeed",
        _one({"Type": "Succeed", "Assign": {}}),
        "/States/A",
        "Field 'Assign' is not supported",
    ),
    _case(
        "Next on Choice",
        _choice({"Variable": "$.a", "IsNull": True, "Next": "D"}, Next="D"),
        "/States/C",
        "Field 'Next' is not supported",
    ),
    _case(
        "End on Succeed",
        _one({"Type": "Succeed", "End": True}),
        "/States/A",
        "Field 'End' is not supported",
    ),
    _case("Comment type", _one(pass_(Comment=1)), "/States/A/Comment", "must be a string"),
    _case("neither Next nor End", _one({"Type": "Pass"}), "/States/A", "either 'Next' or 'End"),
    _case("End false", _one({"Type": "Pass", "End": False}), "/States/A", "either 'Next' or 'End"),
    _case(
        "Next and End",
        machine(("A", pass_(Next="B")), ("B", pass_())),
        "/States/A",
        "both 'Next' and 'End",
    ),
    _case("End type", _one({"Type": "Pass", "End": "yes"}), "/States/A/End", "must be a boolean"),
    _case(
        "Next target",
        machine(("A", {"Type": "Pass", "Next": "Z"})),
        "/States/A/Next",
        "Missing 'Next' target: Z",
        "MISSING_TRANSITION_TARGET",
    ),
    _case(
        "Next type",
        machine(("A", {"Type": "Pass", "Next": 3})),
        "/States/A/Next",
        "must be a string",
    ),
    _case(
        "unreachable",
        machine(("A", pass_()), ("B", pass_())),
        "/States/B",
        'State "B" is not reachable.',
        "MISSING_TRANSITION_TARGET",
    ),
    # paths and templates
    _case("InputPath", _one(pass_(InputPath="a.b")), "/States/A/InputPath", "not a valid JSONPath"),
    _case("OutputPath type", _one(pass_(OutputPath=1)), "/States/A/OutputPath", "JSONPath string"),
    _case(
        "ResultPath wildcard",
        _one(pass_(ResultPath="$.a[*]")),
        "/States/A/ResultPath",
        "must be a reference path",
    ),
    _case(
        "ResultPath context",
        _one(pass_(ResultPath="$$.a")),
        "/States/A/ResultPath",
        "must refer to the state input",
    ),
    _case(
        "Parameters path",
        _one(pass_(Parameters={"a": {"b.$": "nope"}})),
        "/States/A/Parameters/a/b.$",
        "not a valid path",
    ),
    _case(
        "Parameters value type",
        _one(pass_(Parameters={"b.$": 1})),
        "/States/A/Parameters/b.$",
        "must be a string",
    ),
    _case(
        "Parameters bad intrinsic",
        _one(pass_(Parameters={"b.$": "States.Format("})),
        "/States/A/Parameters/b.$",
        "Invalid 'Parameters'",
    ),
    _case(
        "ResultSelector object",
        _one(task(ResultSelector=[1])),
        "/States/A/ResultSelector",
        "must be an object",
    ),
    _case(
        "ResultSelector path",
        _one(task(ResultSelector={"x.$": "$.["})),
        "/States/A/ResultSelector/x.$",
        "Invalid 'ResultSelector'",
    ),
    _case(
        "ItemSelector path",
        _map(ItemSelector={"~/.$": "x"}),
        "/States/A/ItemSelector/~0~1.$",
        "not a valid path",
    ),
    _case("ItemsPath", _map(ItemsPath="$..a"), "/States/A/ItemsPath", "must be a reference path"),
    _case(
        "Assign path",
        _one(pass_(Assign={"v.$": "nope"})),
        "/States/A/Assign/v.$",
        "Invalid 'Assign'",
    ),
    _case(
        "Assign name",
        _one(pass_(Assign={"a-b": 1})),
        "/States/A/Assign/a-b",
        "Invalid variable name",
    ),
    _case("Assign type", _one(pass_(Assign=[])), "/States/A/Assign", "must be an object"),
    # Task
    _case(
        "no Resource",
        _one({"Type": "Task", "End": True}),
        "/States/A",
        "requires the field 'Resource'",
    ),
    _case("Resource type", _one(task(Resource=5)), "/States/A/Resource", "must be a string"),
    _case(
        "Resource shape",
        _one(task(Resource="my function")),
        "/States/A/Resource",
        "Invalid resource",
        "INVALID_RESOURCE",
    ),
    _case(
        "TimeoutSeconds",
        _one(task(TimeoutSeconds=0)),
        "/States/A/TimeoutSeconds",
        "integer between 1",
    ),
    _case(
        "TimeoutSeconds bool",
        _one(task(TimeoutSeconds=True)),
        "/States/A/TimeoutSeconds",
        "integer between 1",
    ),
    _case(
        "HeartbeatSeconds type",
        _one(task(HeartbeatSeconds=1.5)),
        "/States/A/HeartbeatSeconds",
        "integer",
    ),
    _case(
        "heartbeat not below timeout",
        _one(task(TimeoutSeconds=5, HeartbeatSeconds=5)),
        "/States/A/HeartbeatSeconds",
        "must be smaller than 'TimeoutSeconds'",
    ),
    _case(
        "timeout and path",
        _one(task(TimeoutSeconds=5, TimeoutSecondsPath="$.t")),
        "/States/A",
        "only one of 'TimeoutSeconds', 'TimeoutSecondsPath'",
    ),
    _case(
        "TimeoutSecondsPath",
        _one(task(TimeoutSecondsPath="$..t")),
        "/States/A/TimeoutSecondsPath",
        "must be a reference path",
    ),
    _case(
        "Credentials", _one(task(Credentials="role")), "/States/A/Credentials", "must be an object"
    ),
    # Retry
    _case("Retry type", _one(task(Retry={})), "/States/A/Retry", "must be an array"),
    _case("retrier type", _one(task(Retry=[1])), "/States/A/Retry/0", "must be an object"),
    _case(
        "no ErrorEquals",
        _one(task(Retry=[{}])),
        "/States/A/Retry/0",
        "requires the field 'ErrorEquals'",
    ),
    _case(
        "empty ErrorEquals",
        _one(task(Retry=[{"ErrorEquals": []}])),
        "/States/A/Retry/0/ErrorEquals",
        "non-empty array",
    ),
    _case(
        "ErrorEquals item",
        _one(task(Retry=[{"ErrorEquals": ["A", 1]}])),
        "/States/A/Retry/0/ErrorEquals/1",
        "non-empty string",
    ),
    _case(
        "States.ALL not alone",
        _one(task(Retry=[{"ErrorEquals": ["States.ALL", "X"]}])),
        "/States/A/Retry/0/ErrorEquals",
        "must appear alone",
    ),
    _case(
        "States.ALL not last",
        _one(task(Retry=[{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}])),
        "/States/A/Retry/0/ErrorEquals",
        "must be the last",
    ),
    _case(
        "IntervalSeconds",
        _one(task(Retry=[{"ErrorEquals": ["X"], "IntervalSeconds": 0}])),
        "/States/A/Retry/0/IntervalSeconds",
        "integer between 1",
    ),
    _case(
        "MaxAttempts",
        _nested_retry({"ErrorEquals": ["X"], "MaxAttempts": -1}),
        "/States/A/ItemProcessor/States/B/Retry/0/MaxAttempts",
        "integer between 0",
    ),
    _case(
        "BackoffRate",
        _one(task(Retry=[{"ErrorEquals": ["X"], "BackoffRate": 0.5}])),
        "/States/A/Retry/0/BackoffRate",
        "at least 1.0",
    ),
    _case(
        "MaxDelaySeconds",
        _one(task(Retry=[{"ErrorEquals": ["X"], "MaxDelaySeconds": 0}])),
        "/States/A/Retry/0/MaxDelaySeconds",
        "integer between 1",
    ),
    _case(
        "JitterStrategy",
        _one(task(Retry=[{"ErrorEquals": ["X"], "JitterStrategy": "HALF"}])),
        "/States/A/Retry/0/JitterStrategy",
        "[FULL, NONE]",
    ),
    _case(
        "retrier field",
        _one(task(Retry=[{"ErrorEquals": ["X"], "Next": "A"}])),
        "/States/A/Retry/0",
        "Field 'Next' is not supported",
    ),
    # Catch
    _case(
        "catcher Next target",
        _one(task(Catch=[{"ErrorEquals": ["X"], "Next": "Z"}])),
        "/States/A/Catch/0/Next",
        "Missing 'Next' target: Z",
        "MISSING_TRANSITION_TARGET",
    ),
    _case(
        "catcher without Next",
        _one(task(Catch=[{"ErrorEquals": ["X"]}])),
        "/States/A/Catch/0",
        "requires the field 'Next'",
    ),
    _case(
        "catcher ResultPath",
        _one(task(Catch=[{"ErrorEquals": ["X"], "Next": "A", "ResultPath": "$.a[0:1]"}])),
        "/States/A/Catch/0/ResultPath",
        "must be a reference path",
    ),
    _case(
        "catcher States.ALL not last",
        _one(
            task(
                Catch=[
                    {"ErrorEquals": ["States.ALL"], "Next": "A"},
                    {"ErrorEquals": ["X"], "Next": "A"},
                ]
            )
        ),
        "/States/A/Catch/0/ErrorEquals",
        "must be the last",
    ),
    _case(
        "catcher field",
        _one(task(Catch=[{"ErrorEquals": ["X"], "Next": "A", "Foo": 1}])),
        "/States/A/Catch/0",
        "Field 'Foo' is not supported",
    ),
    _case(
        "catcher Output in JSONPath",
        _one(task(Catch=[{"ErrorEquals": ["X"], "Next": "A", "Output": 1}])),
        "/States/A/Catch/0",
        "field 'Output' is only supported for the 'JSONata'",
    ),
    # Choice
    _case(
        "no Choices",
        machine(("C", {"Type": "Choice", "Default": "D"}), ("D", pass_())),
        "/States/C",
        "requires the field 'Choices'",
    ),
    _case("empty Choices", _choice(Default="D"), "/States/C/Choices", "non-empty array"),
    _case(
        "rule without Next",
        _choice({"Variable": "$.a", "IsNull": True}, Default="D"),
        "/States/C/Choices/0",
        "requires the field 'Next'",
    ),
    _case(
        "nested Next",
        _choice({"Not": {"Variable": "$.a", "IsNull": True, "Next": "D"}, "Next": "D"}),
        "/States/C/Choices/0/Not",
        "not supported in a nested Choice rule",
    ),
    _case(
        "empty And", _choice({"And": [], "Next": "D"}), "/States/C/Choices/0/And", "non-empty array"
    ),
    _case(
        "Or item type",
        _choice({"Or": [1], "Next": "D"}),
        "/States/C/Choices/0/Or/0",
        "must be an object",
    ),
    _case(
        "no operator",
        _choice({"Variable": "$.a", "Next": "D"}),
        "/States/C/Choices/0",
        "exactly one of 'And', 'Or', 'Not' or a comparison",
    ),
    _case(
        "two operators",
        _choice({"Variable": "$.a", "IsNull": True, "IsString": True, "Next": "D"}),
        "/States/C/Choices/0",
        "found: IsNull, IsString",
    ),
    _case(
        "no Variable",
        _choice({"StringEquals": "x", "Next": "D"}),
        "/States/C/Choices/0",
        "requires the field 'Variable'",
    ),
    _case(
        "Variable path",
        _choice({"Variable": "a", "IsNull": True, "Next": "D"}),
        "/States/C/Choices/0/Variable",
        "not a valid JSONPath",
    ),
    _case(
        "numeric operand",
        _choice({"Variable": "$.a", "NumericEquals": "1", "Next": "D"}),
        "/States/C/Choices/0/NumericEquals",
        "must be a number",
    ),
    _case(
        "string operand",
        _choice({"Variable": "$.a", "StringEquals": 1, "Next": "D"}),
        "/States/C/Choices/0/StringEquals",
        "must be a string",
    ),
    _case(
        "Is operand",
        _choice({"Variable": "$.a", "IsPresent": "yes", "Next": "D"}),
        "/States/C/Choices/0/IsPresent",
        "must be a boolean",
    ),
    _case(
        "path operand",
        _choice({"Variable": "$.a", "BooleanEqualsPath": True, "Next": "D"}),
        "/States/C/Choices/0/BooleanEqualsPath",
        "JSONPath string",
    ),
    _case(
        "no StringMatchesPath",
        _choice({"Variable": "$.a", "IsNull": True, "StringMatchesPath": "$.b", "Next": "D"}),
        "/States/C/Choices/0",
        "Field 'StringMatchesPath' is not supported",
    ),
    _case(
        "rule field",
        _choice({"Variable": "$.a", "IsNull": True, "Next": "D", "Foo": 1}),
        "/States/C/Choices/0",
        "Field 'Foo' is not supported",
    ),
    _case(
        "Default target",
        _choice({"Variable": "$.a", "IsNull": True, "Next": "D"}, Default="Z"),
        "/States/C/Default",
        "Missing 'Default' target: Z",
        "MISSING_TRANSITION_TARGET",
    ),
    _case(
        "rule Next target",
        _choice({"Variable": "$.a", "IsNull": True, "Next": "Z"}, Default="D"),
        "/States/C/Choices/0/Next",
        "Missing 'Next' target: Z",
        "MISSING_TRANSITION_TARGET",
    ),
    # Wait
    _case(
        "Wait without duration",
        _one({"Type": "Wait", "End": True}),
        "/States/A",
        "requires exactly one of 'Seconds'",
    ),
    _case(
        "Wait with two",
        _one({"Type": "Wait", "Seconds": 1, "SecondsPath": "$.s", "End": True}),
        "/States/A",
        "only one of 'Seconds'",
    ),
    _case(
        "Seconds",
        _one({"Type": "Wait", "Seconds": -1, "End": True}),
        "/States/A/Seconds",
        "integer between 0",
    ),
    _case(
        "Timestamp",
        _one({"Type": "Wait", "Timestamp": "2016-13-01T00:00:00Z", "End": True}),
        "/States/A/Timestamp",
        "ISO-8601",
    ),
    _case(
        "TimestampPath",
        _one({"Type": "Wait", "TimestampPath": 5, "End": True}),
        "/States/A/TimestampPath",
        "reference path string",
    ),
    # Fail
    _case(
        "Error and ErrorPath",
        _one({"Type": "Fail", "Error": "E", "ErrorPath": "$.e"}),
        "/States/A",
        "only one of 'Error', 'ErrorPath'",
    ),
    _case(
        "Cause and CausePath",
        _one({"Type": "Fail", "Cause": "C", "CausePath": "$.c"}),
        "/States/A",
        "only one of 'Cause', 'CausePath'",
    ),
    _case("Cause type", _one({"Type": "Fail", "Cause": 5}), "/States/A/Cause", "must be a string"),
    _case(
        "CausePath",
        _one({"Type": "Fail", "CausePath": "$.c[*]"}),
        "/States/A/CausePath",
        "must be a reference path",
    ),
    _case(
        "ErrorPath intrinsic",
        _one({"Type": "Fail", "ErrorPath": "States.Format('x'"}),
        "/States/A/ErrorPath",
        "not a valid intrinsic function",
    ),
    _case(
        "InputPath on Fail",
        _one({"Type": "Fail", "InputPath": "$"}),
        "/States/A",
        "Field 'InputPath' is not supported",
    ),
    # Parallel
    _case(
        "no Branches",
        _one({"Type": "Parallel", "End": True}),
        "/States/A",
        "requires the field 'Branches'",
    ),
    _case(
        "empty Branches",
        _one({"Type": "Parallel", "Branches": [], "End": True}),
        "/States/A/Branches",
        "non-empty array",
    ),
    _case(
        "branch type",
        _one({"Type": "Parallel", "Branches": ["x"], "End": True}),
        "/States/A/Branches/0",
        "must be an object",
    ),
    _case(
        "branch StartAt",
        _one({"Type": "Parallel", "End": True, "Branches": [{"States": {"X": pass_()}}]}),
        "/States/A/Branches/0",
        "requires the field 'StartAt'",
    ),
    _case(
        "branch field",
        _one(
            {
                "Type": "Parallel",
                "End": True,
                "Branches": [
                    {"StartAt": "X", "States": {"X": pass_()}, "QueryLanguage": "JSONata"}
                ],
            }
        ),
        "/States/A/Branches/0",
        "Field 'QueryLanguage' is not supported",
    ),
    _case(
        "branch leaves its scope",
        machine(
            (
                "A",
                {
                    "Type": "Parallel",
                    "Next": "B",
                    "Branches": [{"StartAt": "X", "States": {"X": {"Type": "Pass", "Next": "B"}}}],
                },
            ),
            ("B", pass_()),
        ),
        "/States/A/Branches/0/States/X/Next",
        "Missing 'Next' target: B",
        "MISSING_TRANSITION_TARGET",
    ),
    # Map
    _case(
        "no processor",
        _one({"Type": "Map", "End": True}),
        "/States/A",
        "requires exactly one of 'ItemProcessor', 'Iterator'",
    ),
    _case(
        "processor and iterator",
        _map(Iterator={"StartAt": "B", "States": {"B": pass_()}}),
        "/States/A",
        "only one of 'ItemProcessor', 'Iterator'",
    ),
    _case(
        "ItemSelector and Parameters",
        _map(ItemSelector={}, Parameters={}),
        "/States/A",
        "only one of 'ItemSelector', 'Parameters'",
    ),
    _case(
        "MaxConcurrency", _map(MaxConcurrency=-1), "/States/A/MaxConcurrency", "integer between 0"
    ),
    _case(
        "MaxConcurrency pair",
        _map(MaxConcurrency=1, MaxConcurrencyPath="$.m"),
        "/States/A",
        "only one of 'MaxConcurrency', 'MaxConcurrencyPath'",
    ),
    _case(
        "ToleratedFailurePercentage",
        _map(ToleratedFailurePercentage=101),
        "/States/A/ToleratedFailurePercentage",
        "between 0 and 100",
    ),
    _case(
        "ToleratedFailureCount",
        _map(ToleratedFailureCount=-1),
        "/States/A/ToleratedFailureCount",
        "integer between 0",
    ),
    _case(
        "ToleratedFailureCountPath",
        _map(ToleratedFailureCountPath="count"),
        "/States/A/ToleratedFailureCountPath",
        "not a valid JSONPath",
    ),
    _case(
        "processor mode",
        _one(
            {
                "Type": "Map",
                "End": True,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "FAST"},
                    "StartAt": "B",
                    "States": {"B": pass_()},
                },
            }
        ),
        "/States/A/ItemProcessor/ProcessorConfig/Mode",
        "[INLINE, DISTRIBUTED]",
    ),
    _case(
        "processor field",
        _one(
            {
                "Type": "Map",
                "End": True,
                "ItemProcessor": {"StartAt": "B", "States": {"B": pass_()}, "Foo": 1},
            }
        ),
        "/States/A/ItemProcessor",
        "Field 'Foo' is not supported",
    ),
    _case(
        "processor state",
        _one(
            {
                "Type": "Map",
                "End": True,
                "ItemProcessor": {"StartAt": "B", "States": {"B": {"Type": "Pass"}}},
            }
        ),
        "/States/A/ItemProcessor/States/B",
        "either 'Next' or 'End",
    ),
    _case(
        "ItemReader",
        _map(ItemReader={"ReaderConfig": {}}),
        "/States/A/ItemReader",
        "'ItemReader' requires the field 'Resource'",
    ),
    _case("ItemBatcher", _map(ItemBatcher=1), "/States/A/ItemBatcher", "must be an object"),
    _case(
        "Label",
        _map(Label="my label"),
        "/States/A/Label",
        "Invalid label name",
        "INVALID_LABEL_NAME",
    ),
    _case(
        "Items in JSONPath",
        _map(Items=[1]),
        "/States/A",
        "field 'Items' is only supported for the 'JSONata' QueryLanguage",
    ),
    # JSONata
    _case(
        "JSONata with InputPath",
        _jsonata(pass_(InputPath="$")),
        "/States/A",
        "The QueryLanguage is set to 'JSONata', but field 'InputPath' is only supported for "
        "the 'JSONPath' QueryLanguage",
    ),
    _case(
        "JSONata with Parameters",
        _jsonata(task(Parameters={})),
        "/States/A",
        "field 'Parameters' is only supported for the 'JSONPath'",
    ),
    _case(
        "JSONata with ResultPath",
        _jsonata(task(ResultPath="$.r")),
        "/States/A",
        "field 'ResultPath' is only supported for the 'JSONPath'",
    ),
    _case(
        "JSONata with SecondsPath",
        _jsonata({"Type": "Wait", "SecondsPath": "$.s", "End": True}),
        "/States/A",
        "field 'SecondsPath' is only supported for the 'JSONPath'",
    ),
    _case(
        "JSONPath with Output",
        _one(pass_(Output={})),
        "/States/A",
        "The QueryLanguage is set to 'JSONPath', but field 'Output' is only supported for "
        "the 'JSONata' QueryLanguage",
    ),
    _case(
        "JSONPath with Arguments",
        _one(task(Arguments={})),
        "/States/A",
        "field 'Arguments' is only supported for the 'JSONata'",
    ),
    _case(
        "JSONPath state in JSONata machine",
        _jsonata(pass_(QueryLanguage="JSONPath")),
        "/States/A",
        "'QueryLanguage' can not be 'JSONPath' if set to 'JSONata'",
    ),
    _case(
        "state query language",
        _one(pass_(QueryLanguage="jsonata")),
        "/States/A/QueryLanguage",
        "[JSONPath, JSONata]",
    ),
    _case(
        "Condition in JSONPath",
        _choice({"Variable": "$.a", "IsNull": True, "Condition": "{% true %}", "Next": "D"}),
        "/States/C/Choices/0",
        "field 'Condition' is only supported for the 'JSONata'",
    ),
    _case(
        "Variable in JSONata",
        machine(
            (
                "C",
                {
                    "Type": "Choice",
                    "Choices": [{"Condition": "{% true %}", "Variable": "$.a", "Next": "D"}],
                },
            ),
            ("D", {"Type": "Succeed"}),
            QueryLanguage="JSONata",
        ),
        "/States/C/Choices/0",
        "field 'Variable' is only supported for the 'JSONPath'",
    ),
    _case(
        "JSONata rule without Condition",
        machine(
            ("C", {"Type": "Choice", "Choices": [{"Next": "D"}]}),
            ("D", {"Type": "Succeed"}),
            QueryLanguage="JSONata",
        ),
        "/States/C/Choices/0",
        "requires the field 'Condition'",
    ),
    _case(
        "Condition not an expression",
        machine(
            ("C", {"Type": "Choice", "Choices": [{"Condition": "$.a", "Next": "D"}]}),
            ("D", {"Type": "Succeed"}),
            QueryLanguage="JSONata",
        ),
        "/States/C/Choices/0/Condition",
        "must be a JSONata expression",
    ),
    _case(
        "unclosed expression",
        _jsonata(pass_(Output={"a": ["{% 1 "]})),
        "/States/A/Output/a/0",
        "JSONata string must start with {% and end with %}",
    ),
    _case(
        "invalid expression",
        _jsonata(pass_(Output="{% 1 + %}")),
        "/States/A/Output",
        "",
        "INVALID_JSONATA_EXPRESSION",
    ),
    _case(
        "Seconds expression type",
        _jsonata({"Type": "Wait", "Seconds": "5", "End": True}),
        "/States/A/Seconds",
        "integer",
    ),
    _case(
        "Arguments type",
        _jsonata(task(Arguments=5)),
        "/States/A/Arguments",
        "an object or a JSONata expression",
    ),
    _case(
        "Items type",
        _jsonata(
            {
                "Type": "Map",
                "Items": {"a": 1},
                "End": True,
                "ItemProcessor": {"StartAt": "B", "States": {"B": pass_()}},
            }
        ),
        "/States/A/Items",
        "an array or a JSONata expression",
    ),
]


@pytest.mark.parametrize(("definition", "location", "fragment", "code"), CASES)
def test_each_rule_reports_one_precise_error(
    definition: Any, location: str, fragment: str, code: str
) -> None:
    found = errors(definition)
    assert [(d.location, d.code) for d in found] == [(location, code)], found
    assert fragment in found[0].message
    with pytest.raises(DefinitionError):
        parse(definition)


def test_a_bad_jsonata_expression_gets_the_aws_code_at_its_pointer() -> None:
    (d,) = errors(_jsonata(pass_(Assign={"v": "{% $states.input.a.( %}"})))
    assert (d.location, d.code) == ("/States/A/Assign/v", "INVALID_JSONATA_EXPRESSION")


def test_label_names_are_unique_in_the_whole_definition() -> None:
    processor = {"StartAt": "B", "States": {"B": pass_()}}
    definition = machine(
        ("A", {"Type": "Map", "Label": "L", "ItemProcessor": processor, "Next": "C"}),
        ("C", {"Type": "Map", "Label": "L", "ItemProcessor": processor, "End": True}),
    )
    (d,) = errors(definition)
    assert (d.location, d.code) == ("/States/C/Label", "DUPLICATE_LABEL_NAME")


# --- robustness -------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_any_json_gives_a_machine_or_a_definition_error(value: Any) -> None:
    _parses_or_rejects(value)
    _parses_or_rejects(json.dumps(value))


FIELD_NAMES = sorted(
    {
        "Type",
        "Next",
        "End",
        "Comment",
        "InputPath",
        "OutputPath",
        "Parameters",
        "Result",
        "ResultPath",
        "ResultSelector",
        "Resource",
        "TimeoutSeconds",
        "TimeoutSecondsPath",
        "HeartbeatSeconds",
        "HeartbeatSecondsPath",
        "Retry",
        "Catch",
        "Choices",
        "Default",
        "Seconds",
        "SecondsPath",
        "Timestamp",
        "TimestampPath",
        "Error",
        "ErrorPath",
        "Cause",
        "CausePath",
        "Branches",
        "ItemProcessor",
        "Iterator",
        "ItemsPath",
        "Items",
        "ItemSelector",
        "MaxConcurrency",
        "ToleratedFailureCount",
        "ToleratedFailurePercentage",
        "ItemReader",
        "Label",
        "Assign",
        "Output",
        "Arguments",
        "QueryLanguage",
        "Credentials",
        "ErrorEquals",
        "IntervalSeconds",
        "MaxAttempts",
        "BackoffRate",
        "Variable",
        "And",
        "Not",
        "StringEquals",
        "NumericEqualsPath",
        "IsNull",
        "Condition",
        "StartAt",
        "States",
        "ProcessorConfig",
        "Mode",
    }
)
atoms = st.sampled_from(
    [
        None,
        True,
        0,
        -1,
        1.5,
        99,
        "",
        "A",
        "B",
        "$",
        "$.a",
        "$.a[*]",
        "$$.x",
        "{% 1 %}",
        "{% $x %}",
        "States.ALL",
        "Pass",
        "Task",
        "Choice",
        "Wait",
        "Map",
        "Parallel",
        "Fail",
        "Succeed",
        "JSONata",
        "JSONPath",
        "States.Format('{}', $.a)",
        FN,
    ]
)
asl_like = st.recursive(
    atoms,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(FIELD_NAMES), children, max_size=5)
    ),
    max_leaves=30,
)
states_like = st.dictionaries(st.sampled_from(["A", "B"]), asl_like, min_size=1, max_size=2)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(states_like, st.sampled_from(["JSONPath", "JSONata"]))
def test_asl_shaped_noise_gives_a_machine_or_a_definition_error(
    states: dict[str, Any], language: str
) -> None:
    _parses_or_rejects({"StartAt": "A", "States": states, "QueryLanguage": language})


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mutating_a_valid_definition_never_crashes(data: st.DataObject) -> None:
    definition = copy.deepcopy(FULL_JSONPATH)
    for _ in range(data.draw(st.integers(1, 3))):
        name = data.draw(st.sampled_from(sorted(definition["States"])))
        state = definition["States"][name]
        key = data.draw(st.sampled_from(FIELD_NAMES))
        state[key] = data.draw(asl_like)
    _parses_or_rejects(definition)


def _parses_or_rejects(definition: Any) -> None:
    try:
        result = parse(definition)
    except DefinitionError as exc:
        assert exc.diagnostics
        assert all(isinstance(d.location, str) and d.message for d in exc.diagnostics)
    else:
        assert isinstance(result, StateMachine)
        assert result.machines[""] is result.root


def test_deep_nesting_is_a_diagnostic_not_a_crash() -> None:
    rule: dict[str, Any] = {"Variable": "$.a", "IsNull": True}
    for _ in range(5000):
        rule = {"Not": rule}
    definition = _choice({**rule, "Next": "D"})
    assert errors(definition)
    assert errors("[" * 100_000)


# --- AWS-accepted definitions -------------------------------------------------------------


def test_every_recorded_aws_definition_validates() -> None:
    cases = CONFORMANCE / "aws-recorded-dev.jsonl"
    if not cases.exists():
        pytest.skip("../shared/conformance is not available")
    rows = [json.loads(line) for line in cases.read_text().splitlines() if line.strip()]
    failures: list[tuple[str, list[Diagnostic]]] = []
    intrinsic_failures: list[tuple[str, list[Diagnostic]]] = []
    intrinsic_total = 0
    for row in rows:
        found = errors(row["definition"])
        uses_intrinsics = INTRINSIC_CALL.search(json.dumps(row["definition"])) is not None
        intrinsic_total += uses_intrinsics
        if found:
            (intrinsic_failures if uses_intrinsics else failures).append((row["id"], found))
    print(
        f"{len(rows)} recorded definitions; {intrinsic_total} use intrinsics, "
        f"{len(intrinsic_failures)} of them do not validate yet"
    )
    assert failures == []
