import copy
import hashlib
import json
import re
import uuid
from typing import Any

import pytest
from stepflow.data.jsonata import JSONataSyntaxError, compile_template, is_expression
from stepflow.errors import StatesError

INPUT = {
    "name": "Ada",
    "items": [{"p": 5, "n": "a"}, {"p": 15, "n": "b"}, {"p": 25, "n": "c"}],
    "flag": True,
    "nothing": None,
    "whole": 2.0,
}
CONTEXT = {"Execution": {"Id": "arn:exec"}, "State": {"Name": "S"}}


def run(
    raw: Any, field: str = "Output", variables: dict[str, Any] | None = None, **states: Any
) -> Any:
    bound = {"input": INPUT, "context": CONTEXT, **states}
    return compile_template(raw, field).evaluate(bound, variables or {})


def failure(raw: Any, field: str = "Output", **kwargs: Any) -> str:
    with pytest.raises(StatesError) as info:
        run(raw, field, **kwargs)
    assert info.value.error == "States.QueryEvaluationError"
    assert info.value.cause is not None
    return info.value.cause


# --- what is an expression --------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{% 1 %}", True),
        ("{%$x%}", True),
        ("{%%}", True),
        (" {% 1 %}", False),
        ("{% 1 %} ", False),
        ("{%}", False),
        ("$states.input", False),
        ("{% 1", False),
        (1, False),
        (None, False),
    ],
)
def test_is_expression_needs_the_delimiters_at_both_ends(value: object, expected: bool) -> None:
    assert is_expression(value) is expected


def test_literals_are_returned_untouched() -> None:
    raw: dict[str, Any] = {
        "null": None,
        "int": 0,
        "float": 0.1,
        "bool": True,
        "padded": " {% $states.input %} ",
        "path": "$.name",
        "path.$": "$",
        "intrinsic": "States.Format('{}', 1)",
        "list": [None, 0, 0.1, True, [], {"k": 0}, "$states.input"],
        "empty": {},
    }
    template = compile_template(raw, "Output")
    assert not template.has_expressions
    assert template.evaluate({"input": INPUT}, {}) == raw


def test_nested_templates_evaluate_every_expression() -> None:
    raw = {
        "name": "{% $states.input.name %}",
        "fixed": "literal",
        "nested": {"cheap": "{% $states.input.items[p < 10].n %}", "deep": [1, "{% 1 + 1 %}"]},
        "list": ["{% $count($states.input.items) %}", {"k": "{% $states.context.State.Name %}"}],
    }
    assert run(raw) == {
        "name": "Ada",
        "fixed": "literal",
        "nested": {"cheap": "a", "deep": [1, 2]},
        "list": [3, {"k": "S"}],
    }


def test_a_whole_value_expression_can_build_any_json() -> None:
    assert run("{% {'total': $sum($states.input.items.p), 'names': $states.input.items.n} %}") == {
        "total": 45,
        "names": ["a", "b", "c"],
    }
    template = compile_template("{% $states.input.name %}", "Output")
    assert template.expression == "$states.input.name"
    assert compile_template({"a": "{% 1 %}"}, "Output").expression is None


def test_states_fields_and_variables_are_bound() -> None:
    variables = {"x": 10, "obj": {"a": [1, 2]}, "nil": None}
    assert run("{% $x * 2 %}", variables=variables) == 20
    assert run("{% $obj.a[1] %}", variables=variables) == 2
    assert run("{% $nil %}", variables=variables) is None
    assert run("{% $nil = null %}", variables=variables) is True
    assert run("{% $states.result.v %}", result={"v": "r"}) == "r"
    assert run("{% $states.errorOutput.Error %}", errorOutput={"Error": "E"}) == "E"
    assert run("{% $states.input.nothing %}") is None


def test_evaluation_never_mutates_its_inputs() -> None:
    states = {"input": copy.deepcopy(INPUT), "context": copy.deepcopy(CONTEXT)}
    variables = {"v": {"list": [3, 1, 2]}}
    raw = {"a": "{% $states.input %}", "b": "{% $sort($v.list) %}", "c": {"k": [1]}}
    snapshot = json.dumps([states, variables, raw])
    template = compile_template(raw, "Output")
    out = template.evaluate(states, variables)
    out["a"]["items"].clear()
    out["c"]["k"].append(2)
    assert json.dumps([states, variables, raw]) == snapshot
    assert template.evaluate(states, variables)["c"] == {"k": [1]}


def test_templates_are_compiled_once() -> None:
    raw = {"a": "{% $states.input.name %}"}
    assert compile_template(raw, "Output") is compile_template(copy.deepcopy(raw), "Output")
    assert compile_template(raw, "Output") is not compile_template(raw, "Arguments")


# --- numbers and types ------------------------------------------------------


def test_whole_numbers_are_integers_and_fractions_stay_floats() -> None:
    result = run(
        {
            "sum": "{% 1 + 2 %}",
            "div": "{% 6 / 2 %}",
            "half": "{% 3 / 2 %}",
            "agg": "{% $sum([1.5, 1.5]) %}",
        }
    )
    assert result == {"sum": 3, "div": 3, "half": 1.5, "agg": 3}
    assert [type(result[k]) for k in ("sum", "div", "half", "agg")] == [int, int, float, int]
    assert type(run("{% $states.input.whole %}")) is int
    assert run("{% [1.0, 2.5] %}") == [1, 2.5]
    assert type(run("{% 1.5 %}")) is float


def test_booleans_are_not_numbers() -> None:
    assert run("{% true %}") is True
    assert run("{% $states.input.flag %}") is True
    assert run("{% $type($states.input.flag) %}") == "boolean"
    assert run("{% $states.input.flag = 1 %}") is False
    assert failure("{% $states.input.flag + 1 %}").endswith(
        'T2001: The left side of the "+" operator must evaluate to a number'
    )
    assert run("{% [true, 1, false, 0] %}") == [True, 1, False, 0]
    assert [type(v) for v in run("{% [true, 1] %}")] == [bool, int]


def test_null_and_empty_structures_survive() -> None:
    assert run("{% null %}") is None
    assert run("{% [null, {'a': null}] %}") == [None, {"a": None}]
    assert run("{% {} %}") == {}
    assert run("{% [] %}") == []


# --- undefined and errors ---------------------------------------------------


def test_undefined_result_fails_with_the_field_path() -> None:
    assert failure({"result": "{% $doesNotExist %}"}) == (
        "The JSONata expression '$doesNotExist' specified for the field 'Output/result' "
        "returned nothing (undefined)."
    )
    assert failure("{% $doesNotExist %}", "Arguments") == (
        "The JSONata expression '$doesNotExist' specified for the field 'Arguments' "
        "returned nothing (undefined)."
    )
    assert "'Arguments/a/b'" in failure({"a": {"b": "{% $states.input.missing %}"}}, "Arguments")
    assert "'Output/list[1]'" in failure({"list": [1, "{% $nope %}"]})
    assert "'Assign/total'" in failure({"total": "{% $states.result %}"}, "Assign")


def test_undefined_inside_an_expression_is_jsonata_semantics() -> None:
    assert run("{% {'a': $nope, 'b': 1} %}") == {"b": 1}
    assert run("{% [$nope, 1] %}") == [1]
    assert run("{% [$nope, 1, 2] %}") == [1, 2]


def test_library_errors_carry_code_and_reference_message() -> None:
    assert failure({"FunctionResult": "{% $randomSeeded($states.input.name) %}"}) == (
        "The JSONata expression '$randomSeeded($states.input.name)' specified for the field "
        "'Output/FunctionResult' threw an error during evaluation. "
        "T1006: Attempted to invoke a non-function"
    )
    cases = {
        "{% $sum('a') %}": 'T0412: Argument 1 of function "sum" must be an array of "numbers"',
        "{% $abs('a') %}": 'T0410: Argument 1 of function "abs" does not match function signature',
        "{% 1 + 'a' %}": 'T2002: The right side of the "+" operator must evaluate to a number',
        "{% 'a' < 1 %}": (
            'T2009: The values "a" and 1 either side of operator "<" must be of the same data type'
        ),
        "{% -'a' %}": 'D1002: Cannot negate a non-numeric value: "a"',
        "{% $sqrt(-1) %}": "D3060: The sqrt function cannot be applied to a negative number: -1",
        "{% $number('x') %}": 'D3030: Unable to cast value to a number: "x"',
        "{% $error('boom') %}": "D3137: boom",
        "{% $eval('1 + 1') %}": "T1006: Attempted to invoke a non-function",
    }
    for raw, message in cases.items():
        assert failure(raw).endswith("threw an error during evaluation. " + message), raw


def test_an_integer_past_the_doubles_is_printed_in_an_error_not_raised() -> None:
    # a type error naming an integer past 1e308 was an OverflowError (States.Runtime)
    huge = 2**1100
    assert failure("{% $states.input.n < 'a' %}", input={"n": huge}).endswith(
        f'T2009: The values {huge} and "a" either side of operator "<" must be of the same'
        " data type"
    )


def test_a_function_result_is_not_json() -> None:
    assert failure("{% $uppercase %}") == (
        "The JSONata expression '$uppercase' specified for the field 'Output' "
        "returned an unsupported result type."
    )


def test_runaway_expressions_are_stopped() -> None:
    loop = failure("{% ($f := function() { $f() }; $f()) %}")
    assert loop.endswith(
        "threw an error during evaluation: Expression evaluation timeout: Check for infinite loop"
    )
    deep = failure("{% ($f := function($n) { $n = 0 ? 0 : 1 + $f($n - 1) }; $f(100000)) %}")
    assert "threw an error during evaluation: Stack overflow error" in deep
    assert run("{% ($f := function($n) { $n <= 1 ? 1 : $n * $f($n - 1) }; $f(10)) %}") == 3628800


# --- compile-time checks ----------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        ("{% a[1,2) %}", 'Expected "]", got ","'),
        ("{% 1 + %}", "Unexpected end of expression"),
        ("{%  %}", "Unexpected end of expression"),
        ('{% "open %}', "String literal must be terminated by a matching quote"),
        ('{% {"a":} %}', 'The symbol "}" cannot be used as a unary operator'),
    ],
)
def test_syntax_errors_are_raised_at_compile_time(raw: str, detail: str) -> None:
    with pytest.raises(JSONataSyntaxError) as info:
        compile_template({"deep": [raw]}, "Arguments")
    error = info.value
    assert error.kind == "INVALID_JSONATA_EXPRESSION"
    assert error.detail == detail
    assert error.diagnostic == f"INVALID_JSONATA_EXPRESSION: {detail}"
    assert error.field == "Arguments/deep[0]"
    assert "Arguments/deep[0]" in str(error)


@pytest.mark.parametrize(
    ("expression", "name"),
    [
        ("phone", "phone"),
        ("phone.number", "phone"),
        ("$count(items)", "items"),
        ("{'a': total}", "total"),
        ("$", "$"),
        ("$.total", "$"),
        ("$$", "$$"),
        ("$states.input[$ = $$]", "$$"),
        ("1 + x", "x"),
    ],
)
def test_top_level_references_are_refused(expression: str, name: str) -> None:
    with pytest.raises(JSONataSyntaxError) as info:
        compile_template("{% " + expression + " %}", "Output")
    assert info.value.kind == "UNSUPPORTED_JSONATA_EXPRESSION"
    assert info.value.detail == f"Reference to '{name}' at the top level is not supported."


@pytest.mark.parametrize(
    "expression",
    [
        "$states.input.items[p > 10].n",
        "$states.input.items.(p * 2)",
        "$states.input.items[$.p > 10]",
        "$map($states.input.items, function($v) { $v.p })",
        "$states.input.items^(p).n",
        "$states.input.items{n: p}",
    ],
)
def test_nested_context_references_are_allowed(expression: str) -> None:
    assert compile_template("{% " + expression + " %}", "Output").has_expressions


# --- Step Functions functions -----------------------------------------------


def test_partition() -> None:
    assert run("{% $partition([1, 2, 3, 4, 5], 2) %}") == [[1, 2], [3, 4], [5]]
    assert run("{% $partition([0], 1) %}") == [[0]]
    assert run("{% $partition([0, 1], 5) %}") == [[0, 1]]
    assert run("{% $partition($states.input.items.p, 3) %}") == [[5, 15, 25]]
    for size in ("0", "-1", "1.5"):
        cause = failure("{% $partition([1, 2], " + size + ") %}")
        assert "threw an error during evaluation: The chunk size" in cause
    assert "T0410" in failure("{% $partition([1], 'a') %}")


def test_range() -> None:
    assert run("{% $range(0, 10, 2) %}") == [0, 2, 4, 6, 8, 10]
    assert run("{% $range(0, 10, 3) %}") == [0, 3, 6, 9]
    assert run("{% $range(5, 1, -2) %}") == [5, 3, 1]
    assert run("{% $range(1, 9, 9) %}") == 1  # a one-item sequence is its item
    assert run("{% $count($range(1, 0, 1)) %}") == 0
    assert "must not be zero" in failure("{% $range(1, 3, 0) %}")


def test_hash() -> None:
    for algorithm, name in [
        ("MD5", "md5"),
        ("SHA-1", "sha1"),
        ("SHA-256", "sha256"),
        ("SHA-512", "sha512"),
    ]:
        expected = hashlib.new(name, b"input data").hexdigest()
        assert run("{% $hash('input data', '" + algorithm + "') %}") == expected
    assert "is not supported" in failure("{% $hash('x', 'SHA-3') %}")
    assert 'T0410: Argument 1 of function "hash"' in failure("{% $hash(1, 'MD5') %}")


def test_random() -> None:
    value = run("{% $random() %}")
    assert isinstance(value, float)
    assert 0 <= value < 1
    seeded = run("{% [$random(42), $random(42), $random(7)] %}")
    assert seeded[0] == seeded[1]
    assert seeded[0] != seeded[2]
    assert 0 <= seeded[2] < 1
    assert "T0410" in failure("{% $random('seed') %}")


def test_uuid() -> None:
    first, second = run("{% [$uuid(), $uuid()] %}")
    assert first != second
    assert uuid.UUID(first).version == 4
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", first
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-0", 0),
        ("1", 1),
        ("1.1", 1.1),
        ("true", True),
        ('"HelloWorld"', "HelloWorld"),
        ('[1, 2, "HelloWorld"]', [1, 2, "HelloWorld"]),
        ('{"Arg1": 1, "Arg2": []}', {"Arg1": 1, "Arg2": []}),
        ("[1]", [1]),
        ("null", None),
    ],
)
def test_parse(text: str, expected: Any) -> None:
    result = run("{% $parse($s) %}", variables={"s": text})
    assert result == expected
    assert type(result) is type(expected)


def test_parse_refuses_invalid_json() -> None:
    for text in ("nope", "NaN", "{'a': 1}"):
        cause = failure("{% $parse($s) %}", variables={"s": text})
        assert "The argument of the parse function is not valid JSON" in cause
