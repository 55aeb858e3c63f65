import copy
import re
from typing import Any

import pytest
from stepflow.data.intrinsic_parser import Call, Literal, PathArgument, parse_intrinsic
from stepflow.data.intrinsics import (
    IntrinsicSyntaxError,
    compile_intrinsic,
    to_java_string,
    to_json_text,
)
from stepflow.data.scope import Scope
from stepflow.errors import StatesError

INPUT: dict[str, Any] = {
    "name": "Ada",
    "n": 5,
    "f": 1.5,
    "nul": None,
    "obj": {"Arg1": 1, "Arg2": []},
    "arr": [1, 2, 3, 4, 5],
    "items": [{"p": 1}, {"p": 2}],
    "text": "1,2,,3",
}
CONTEXT: dict[str, Any] = {
    "Execution": {"Id": "arn:aws:states:us-east-1:1:execution:sm:run-1", "Name": "run-1"},
    "StateMachine": {"Id": "arn:aws:states:us-east-1:1:stateMachine:sm", "Name": "sm"},
}
SCOPE = Scope(INPUT, CONTEXT, {"greeting": "Hello {}!", "count": 2})
INPUT_JSON = (
    '{"name":"Ada","n":5,"f":1.5,"nul":null,"obj":{"Arg1":1,"Arg2":[]},'
    '"arr":[1,2,3,4,5],"items":[{"p":1},{"p":2}],"text":"1,2,,3"}'
)


def run(text: str, scope: Scope = SCOPE) -> Any:
    return compile_intrinsic(text)(scope)


def failure(text: str, scope: Scope = SCOPE) -> StatesError:
    with pytest.raises(StatesError) as info:
        run(text, scope)
    return info.value


def assert_invalid(text: str, function: str, scope: Scope = SCOPE) -> None:
    error = failure(text, scope)
    assert error.error == "States.Runtime"
    assert error.cause == (
        f"The function '{text}' had the following error: Invalid arguments in {function}"
    )


# --- parsing ------------------------------------------------------------------------


def test_parse_builds_a_tree_of_calls_literals_and_paths() -> None:
    call = parse_intrinsic("States.Format('a\\'b {}', $.x, -1.5e2, true, null, States.UUID())")
    assert call.name == "States.Format"
    template, path, number, flag, nothing, nested = call.args
    assert template == Literal("a'b {}", "a\\'b {}")
    assert isinstance(path, PathArgument) and path.text == "$.x"
    assert number == Literal(-150.0) and isinstance(number.value, float)
    assert flag == Literal(True) and nothing == Literal(None)
    assert nested == Call("States.UUID", ())


def test_parse_accepts_whitespace_and_complex_paths() -> None:
    call = parse_intrinsic(
        "  States.Array( $['a b'] , $.items[?(@.p > 1)].p,$$.Execution.Id,$var.x[0] )  "
    )
    assert [a.text for a in call.args if isinstance(a, PathArgument)] == [
        "$['a b']",
        "$.items[?(@.p > 1)].p",
        "$$.Execution.Id",
        "$var.x[0]",
    ]


def test_integer_and_float_literals_keep_their_type() -> None:
    assert run("States.Array(0, -7, 2.0, 1E3)") == [0, -7, 2.0, 1000.0]
    assert [type(v) for v in run("States.Array(0, 2.0)")] == [int, float]


def test_string_literal_escapes_and_raw_control_characters() -> None:
    assert run("States.Array('it\\'s', '\\{\\}', 'back\\\\slash', 'line\nbreak')") == [
        "it's",
        "{}",
        "back\\slash",
        "line\nbreak",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "States.Foo(1)",  # unknown function
        "States.format('x')",  # names are case-sensitive
        "Format('x')",
        "States.Array",
        "States.Array(",
        "States.Array(1",
        "States.Array(1,)",
        "States.Array(,1)",
        "States.Array(1 2)",
        "States.Array($.a) trailing",
        "States.Array([1,2])",
        "States.Array({})",
        "States.Array(1.)",
        "States.Array(.5)",
        "States.Array(01)",
        "States.Array(1e999)",
        "States.Array(True)",
        "States.Array(nullx)",
        "States.Array('unterminated)",
        "States.Array('bad escape \\n')",
        "States.Array('dangling \\",
        'States.Array("double quotes")',
        "States.Array($.a[)",
        "States.Array(States.Nope())",
        "States.Array () ",
    ],
)
def test_malformed_calls_are_syntax_errors(text: str) -> None:
    with pytest.raises(IntrinsicSyntaxError):
        compile_intrinsic(text)


def test_syntax_error_is_a_value_error_and_names_the_problem() -> None:
    with pytest.raises(ValueError, match="invalid escape sequence"):
        compile_intrinsic("States.Format('a\\nb')")
    with pytest.raises(IntrinsicSyntaxError, match=r"unknown intrinsic function 'States\.Foo'"):
        compile_intrinsic("States.Array(States.Foo())")


def test_compilation_is_cached() -> None:
    assert compile_intrinsic("States.Array(1)") is compile_intrinsic("States.Array(1)")


# --- argument paths -----------------------------------------------------------------


def test_paths_read_input_context_and_variables() -> None:
    assert run("States.Array($.name, $$.Execution.Name, $count, $)") == ["Ada", "run-1", 2, INPUT]
    assert run("States.Array($.items[*].p, $.items[*].missing)") == [[1, 2], []]


def test_missing_path_argument_names_the_whole_expression_and_the_input() -> None:
    text = "States.Format('{}', States.Format('{}', $.nope))"
    error = failure(text)
    assert error.error == "States.Runtime"
    assert error.cause == (
        f"The function '{text}' had the following error: The JsonPath argument for the field "
        f"'$.nope' could not be found in the input '{INPUT_JSON}'"
    )


def test_missing_context_path_is_reported_against_the_state_input() -> None:
    error = failure("States.Array($$.Nope.Deep)", Scope({"a": 1}, CONTEXT))
    assert error.cause == (
        "The function 'States.Array($$.Nope.Deep)' had the following error: The JsonPath "
        "argument for the field '$.Nope.Deep' could not be found in the input '{\"a\":1}'"
    )


def test_missing_variable_and_out_of_range_index_fail() -> None:
    assert "'$unknown'" in (failure("States.Array($unknown)").cause or "")
    assert "'$.arr[9]'" in (failure("States.Array($.arr[9])").cause or "")


def test_explicit_null_argument_is_a_value() -> None:
    assert run("States.Format('{}', $.nul)") == "null"


# --- States.Format ------------------------------------------------------------------


def test_format_fills_placeholders_in_order() -> None:
    assert run("States.Format('Hello {}, you are {}.', $.name, $.n)") == "Hello Ada, you are 5."
    assert run("States.Format('no placeholders')") == "no placeholders"
    assert run("States.Format('  {}  ', 'x')") == "  x  "


def test_format_renders_values_the_java_way() -> None:
    text = "States.Format('{}|{}|{}|{}|{}|{}', $.nul, false, -1, $.f, $.obj, $.items)"
    assert run(text) == "null|false|-1|1.5|{Arg1=1, Arg2=[]}|[{p=1}, {p=2}]"
    assert run("States.Format('{} {} {}', 1e20, 0.0001, 2.0)") == "1.0E20 1.0E-4 2.0"


def test_format_escaped_braces_and_quotes_are_literal() -> None:
    assert run("States.Format('\\{\\} {} \\'{}\\'', 1, 2)") == "{} 1 '2'"


def test_format_template_may_come_from_a_path() -> None:
    assert run("States.Format($greeting, $.name)") == "Hello Ada!"


def test_format_argument_count_must_match_placeholders() -> None:
    for text in ["States.Format('{} {}', 1)", "States.Format('{}', 1, 2)"]:
        error = failure(text)
        assert error.error == "States.Runtime"
        assert error.cause == (
            f"The function '{text}' had the following error: Invalid arguments in "
            "States.Format: number of arguments do not match the occurrences of {}."
        )


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("States.Format('Hello {', 1)", "matching '}' not found for '{'."),
        ("States.Format('Hello {{}}', 1)", "matching '}' not found for '{'."),
        ("States.Format('}')", "matching '{' not found for '}'."),
    ],
)
def test_format_malformed_template_fails_at_run_time(text: str, detail: str) -> None:
    error = failure(text)
    assert error.error == "States.Runtime"
    assert error.cause == (
        f"The function '{text}' had the following error: Invalid template in States.Format: "
        + detail
    )


def test_format_template_must_be_a_string() -> None:
    assert_invalid("States.Format($.n, 1)", "States.Format")
    assert_invalid("States.Format()", "States.Format")


# --- JSON ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "null"),
        (0, "0"),
        (1.1, "1.1"),
        (True, "true"),
        ("HelloWorld", '"HelloWorld"'),
        ([1, 2, "HelloWorld"], '[1,2,"HelloWorld"]'),
        ({"Arg1": 1, "Arg2": []}, '{"Arg1":1,"Arg2":[]}'),
        ({"big": 1e20, "small": 1e-5, "whole": 3.0}, '{"big":1.0E20,"small":1.0E-5,"whole":3.0}'),
        ('q"b\\n\n\x01é', '"q\\"b\\\\n\\n\\u0001é"'),
    ],
)
def test_json_to_string_writes_compact_json(value: Any, expected: str) -> None:
    assert run("States.JsonToString($.v)", Scope({"v": value}, {})) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        (" ", None),
        ("null", None),
        ("-0", 0),
        ("1.1", 1.1),
        ("true", True),
        ('"HelloWorld"', "HelloWorld"),
        ('[1, 2, "HelloWorld"]', [1, 2, "HelloWorld"]),
        ('{"Arg1": 1, "Arg2": []}', {"Arg1": 1, "Arg2": []}),
    ],
)
def test_string_to_json_parses(text: str, expected: Any) -> None:
    assert run("States.StringToJson($.s)", Scope({"s": text}, {})) == expected


@pytest.mark.parametrize("value", ["{oops", "NaN", "[1,", "abc", 5, {"a": 1}])
def test_string_to_json_rejects_non_json(value: Any) -> None:
    assert_invalid("States.StringToJson($.s)", "States.StringToJson", Scope({"s": value}, {}))


def test_json_merge_is_shallow_and_does_not_mutate() -> None:
    scope = Scope(
        {"a": {"x": {"a1": 1}, "b": 2, "d": 3}, "b": {"x": {"a3": 1}, "c": 3, "d": 4}}, {}
    )
    before = copy.deepcopy(scope.input)
    assert run("States.JsonMerge($.a, $.b, false)", scope) == {
        "x": {"a3": 1},
        "b": 2,
        "d": 4,
        "c": 3,
    }
    assert scope.input == before


def test_json_merge_of_a_parsed_literal_and_a_context_path() -> None:
    scope = Scope({}, {"Execution": {"Input": {"input_field": {"k": "v"}}}})
    text = (
        'States.JsonMerge(States.StringToJson(\'{"constant_in_literal": "false"}\'), '
        "$$.Execution.Input.input_field, false)"
    )
    assert run(text, scope) == {"constant_in_literal": "false", "k": "v"}


@pytest.mark.parametrize(
    "text",
    [
        "States.JsonMerge($.obj, $.obj, true)",
        "States.JsonMerge($.obj, $.obj, 'false')",
        "States.JsonMerge($.obj, $.arr, false)",
        "States.JsonMerge($.obj, $.obj)",
    ],
)
def test_json_merge_rejects_deep_mode_and_non_objects(text: str) -> None:
    assert_invalid(text, "States.JsonMerge")


# --- arrays -------------------------------------------------------------------------


def test_array_collects_its_arguments() -> None:
    assert run("States.Array()") == []
    assert run("States.Array(1, States.Array(2, 3), $.obj)") == [1, [2, 3], INPUT["obj"]]


@pytest.mark.parametrize(
    ("array", "size", "expected"),
    [
        ([], 1, []),
        ([0, 1, 2], 2, [[0, 1], [2]]),
        ([0, 1, 2, 3], 4, [[0, 1, 2, 3]]),
        ([0, 1], 5, [[0, 1]]),
        ([1, 2, 3, 4, 5], 2.6, [[1, 2], [3, 4], [5]]),  # truncated, not rounded
    ],
)
def test_array_partition(array: list[Any], size: Any, expected: Any) -> None:
    assert run("States.ArrayPartition($.a, $.s)", Scope({"a": array, "s": size}, {})) == expected


@pytest.mark.parametrize("size", [0, -1, 0.6, -0.4, "2", None, True])
def test_array_partition_rejects_bad_chunk_sizes(size: Any) -> None:
    scope = Scope({"a": [1, 2, 3], "s": size}, {})
    assert_invalid("States.ArrayPartition($.a, $.s)", "States.ArrayPartition", scope)


def test_array_contains_compares_like_aws() -> None:
    assert run("States.ArrayContains($.arr, 3)") is True
    assert run("States.ArrayContains($.arr, 9)") is False
    assert run("States.ArrayContains(States.Array(), null)") is False
    assert run("States.ArrayContains($.items, $.items[1])") is True
    assert run("States.ArrayContains(States.Array(0, 1), false)") is False
    assert run("States.ArrayContains(States.Array(1), 1.0)") is False
    # AWS compares Java string forms: "true" matches true, key order matters.
    assert run("States.ArrayContains(States.Array('true'), true)") is True
    scope = Scope({"a": [{"a": 1, "b": 2}], "t": {"b": 2, "a": 1}}, {})
    assert run("States.ArrayContains($.a, $.t)", scope) is False
    assert_invalid("States.ArrayContains('x', 'x')", "States.ArrayContains")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("1, 9, 2", [1, 3, 5, 7, 9]),
        ("0, 10, 3", [0, 3, 6, 9]),
        ("1, 9, 9", [1]),
        ("3, 3, -1", [3]),
        ("5, 1, -2", [5, 3, 1]),
        ("5, 1, 1", []),
        ("1, 5, -1", []),
        ("1.6, 1.4, 1", [1]),  # arguments are truncated towards zero
        ("5.4, -0.6, -2.4", [5, 3, 1]),
    ],
)
def test_array_range(args: str, expected: list[int]) -> None:
    assert run(f"States.ArrayRange({args})") == expected


def test_array_range_limits() -> None:
    assert len(run("States.ArrayRange(1, 1000, 1)")) == 1000
    assert len(run("States.ArrayRange(1000, 1, -1)")) == 1000
    for args in ["1, 1001, 1", "1001, 1, -1", "1, 10, 0", "1, 10, 0.49", "'a', 5, 1", "1, 5"]:
        assert_invalid(f"States.ArrayRange({args})", "States.ArrayRange")


def test_array_get_item() -> None:
    assert run("States.ArrayGetItem($.arr, 0)") == 1
    assert run("States.ArrayGetItem($.arr, 4)") == 5
    assert run("States.ArrayGetItem($.arr, 1.9)") == 2  # truncated
    assert run("States.ArrayGetItem($.items, 1)") == {"p": 2}
    assert run("States.ArrayGetItem(States.Array(), 999)") is None  # what AWS answers
    for index in ["5", "-1", "'1'", "null"]:
        assert_invalid(f"States.ArrayGetItem($.arr, {index})", "States.ArrayGetItem")
    assert_invalid("States.ArrayGetItem('not-array', 0)", "States.ArrayGetItem")


def test_array_length() -> None:
    assert run("States.ArrayLength($.arr)") == 5
    assert run("States.ArrayLength(States.Array())") == 0
    assert_invalid("States.ArrayLength($.obj)", "States.ArrayLength")
    assert_invalid("States.ArrayLength($.arr, 1)", "States.ArrayLength")


def test_array_unique_keeps_first_occurrences_with_typed_equality() -> None:
    values: list[Any] = [None, None, True, True, 1, 1, 1.0, 0, "x", "x", [], [], [None], [None]]
    values += [{"a": 1, "b": 2}, {"b": 2, "a": 1}, {"a": 1, "b": 1}]
    assert run("States.ArrayUnique($.v)", Scope({"v": values}, {})) == [
        None,
        True,
        1,
        1.0,
        0,
        "x",
        [],
        [None],
        {"a": 1, "b": 2},
        {"a": 1, "b": 1},
    ]


# --- encoding and hashing -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("", ""),
        ("Data to encode", "RGF0YSB0byBlbmNvZGU="),
        ("✓", "4pyT"),
        ("🚀", "8J+agA=="),
        ("abc\x00def", "YWJjAGRlZg=="),
    ],
)
def test_base64_round_trip(text: str, encoded: str) -> None:
    scope = Scope({"s": text, "e": encoded}, {})
    assert run("States.Base64Encode($.s)", scope) == encoded
    assert run("States.Base64Decode($.e)", scope) == text


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [("abc", "i\xb7"), ("ab==cd", "i"), (" YWJjZA== ", "abcd"), ("YWJj\nZA==", "abcd")],
)
def test_base64_decode_is_lenient_like_aws(encoded: str, decoded: str) -> None:
    result = run("States.Base64Decode($.e)", Scope({"e": encoded}, {}))
    assert result == decoded.encode("latin-1").decode("utf-8", "replace")


def test_base64_limits_and_types() -> None:
    assert run("States.Base64Encode($.s)", Scope({"s": "a" * 10_000}, {})).startswith("YWFh")
    for function in ["States.Base64Encode", "States.Base64Decode"]:
        assert_invalid(f"{function}($.s)", function, Scope({"s": "a" * 10_001}, {}))
        assert_invalid(f"{function}(123)", function)
        assert_invalid(f"{function}($.obj)", function)
        assert_invalid(f"{function}()", function)


@pytest.mark.parametrize(
    ("algorithm", "digest"),
    [
        ("MD5", "812f45842bc6d66ee14572ce20db8e86"),
        ("SHA-1", "aaff4a450a104cd177d28d18d74485e8cae074b7"),
        ("SHA-256", "b4a697a057313163aee33cd8d40c66e9f0f177e00cac2de32475ffff6169c3e3"),
        (
            "SHA-384",
            "d28a7d5cf25a74f11a50a18452b75e04bb3d70c9dd0510d6123aa008c756511b"
            "87525bdc835ebb27e1fb9e9374a15562",
        ),
        (
            "SHA-512",
            "6ce4adb348546d4f449c4d25aad9a7c9cb711d9e91982d3f0b29ca2f3f47d4ce"
            "2deba23bf2954f0f1d593fc50283731a533d30d425402d4f91316d871303aac4",
        ),
    ],
)
def test_hash_algorithms(algorithm: str, digest: str) -> None:
    assert run(f"States.Hash('input data', '{algorithm}')") == digest


def test_hash_stringifies_non_strings_and_checks_its_arguments() -> None:
    assert run("States.Hash(123, 'MD5')") == run("States.Hash('123', 'MD5')")
    assert len(run("States.Hash($.s, 'SHA-256')", Scope({"s": "a" * 10_000}, {}))) == 64
    assert_invalid("States.Hash($.s, 'SHA-256')", "States.Hash", Scope({"s": "a" * 10_001}, {}))
    for algorithm in ["'sha-256'", "'SHA256'", "'MD-5'", "''", "123"]:
        assert_invalid(f"States.Hash('data', {algorithm})", "States.Hash")
    assert_invalid("States.Hash('data')", "States.Hash")


# --- math ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "total"),
    [
        (-9, 3, -6),
        (1.49, 1.5, 3),  # Java Math.round: halves round up
        (1.5, 1.51, 4),
        (-1.49, -1.5, -2),
        (-1.5, -1.51, -3),
        (0.5, 0, 1),
        (2.5, 0, 3),
        (-0.5, 0.5, 1),
        (-2.5, 0, -2),
        (2147483646, 1, 2147483647),
        (-2147483647, -1, -2147483648),
    ],
)
def test_math_add_rounds_then_adds(a: Any, b: Any, total: int) -> None:
    result = run("States.MathAdd($.a, $.b)", Scope({"a": a, "b": b}, {}))
    assert result == total and isinstance(result, int)


@pytest.mark.parametrize(
    "args",
    [
        "2147483647, 1",
        "-2147483648, -1",
        "3000000000, 1",
        "1" + "0" * 400 + ", 1",
        "'1', 2",
        "null, 1",
        "true, 1",
        "1",
    ],
)
def test_math_add_rejects_non_int32_arguments(args: str) -> None:
    assert_invalid(f"States.MathAdd({args})", "States.MathAdd")


def test_math_random_stays_in_range() -> None:
    values = {run("States.MathRandom(1, 4)") for _ in range(200)}
    assert values <= {1, 2, 3} and len(values) > 1
    assert all(1 <= run("States.MathRandom(1.6, 5.4)") < 5 for _ in range(50))


def test_math_random_with_a_seed_is_java_random() -> None:
    # new java.util.Random(0).nextInt(100) == 60, new Random(42).nextInt(10) == 0
    assert run("States.MathRandom(0, 100, 0)") == 60
    assert run("States.MathRandom(5, 15, 42)") == 5
    assert run("States.MathRandom(1, 1000, 7)") == run("States.MathRandom(1, 1000, 7)")


@pytest.mark.parametrize(
    "args", ["1, 1", "10, 5", "1.4, 1.6", "'a', 10", "1, 10, 'seed'", "1, 10, null", "1"]
)
def test_math_random_rejects_bad_arguments(args: str) -> None:
    assert_invalid(f"States.MathRandom({args})", "States.MathRandom")


# --- strings and ids ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "delimiters", "pieces"),
    [
        (" ", ",", [" "]),
        (" , ", ",", [" ", " "]),
        (", , ,", ",", [" ", " "]),
        (",,,,", ",", []),
        ("This.is+a,test=string", ".+,=", ["This", "is", "a", "test", "string"]),
        ("split on T and \nnew line", "T\n", ["split on ", " and ", "new line"]),
        ("abc", "", ["abc"]),
        ("", ",", []),
    ],
)
def test_string_split_on_any_delimiter_character(
    text: str, delimiters: str, pieces: list[str]
) -> None:
    scope = Scope({"t": text, "d": delimiters}, {})
    assert run("States.StringSplit($.t, $.d)", scope) == pieces


def test_string_split_with_literals_and_nesting() -> None:
    assert run("States.StringSplit('Hello\nWorld', '\n')") == ["Hello", "World"]
    text = (
        "States.ArrayGetItem(States.StringSplit($$.StateMachine.Name, '-'), "
        "States.MathAdd(States.ArrayLength(States.StringSplit($$.StateMachine.Name, '-')), -1))"
    )
    assert run(text, Scope({}, {"StateMachine": {"Name": "a-b-c"}})) == "c"
    assert_invalid("States.StringSplit($.arr, ',')", "States.StringSplit")


def test_uuid_is_a_fresh_v4_uuid() -> None:
    first, second = run("States.UUID()"), run("States.UUID()")
    pattern = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
    assert re.fullmatch(pattern, first) and first != second
    assert_invalid("States.UUID(1)", "States.UUID")


# --- rendering helpers and purity ---------------------------------------------------


def test_java_string_rendering() -> None:
    assert to_java_string({"a": [1, "x", None, {"b": 2.5}]}) == "{a=[1, x, null, {b=2.5}]}"
    assert [to_java_string(v) for v in (1e7, 1e-3, 123456.5, -0.0, 1e-4)] == [
        "1.0E7",
        "0.001",
        "123456.5",
        "-0.0",
        "1.0E-4",
    ]
    assert to_json_text([1.0, -2.5e-7]) == "[1.0,-2.5E-7]"


def test_evaluation_never_mutates_the_input() -> None:
    scope = Scope(copy.deepcopy(INPUT), CONTEXT)
    for text in [
        "States.ArrayPartition($.arr, 2)",
        "States.ArrayUnique($.arr)",
        "States.JsonMerge($.obj, $.obj, false)",
        "States.Array($.obj, $.arr)",
        "States.ArrayGetItem($.items, 0)",
    ]:
        run(text, scope)
    assert scope.input == INPUT
