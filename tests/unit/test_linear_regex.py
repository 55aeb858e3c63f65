"""User regular expressions run on RE2: JSONata regex literals and JSONPath ``=~``."""

from __future__ import annotations

from typing import Any

import pytest
from stepflow.data.jsonata import compile_template
from stepflow.data.jsonpath import compile_path
from stepflow.errors import StatesError, StatesErrorName

_EVIL = "a" * 40 + "b"  # with `re`, /^(a+)+$/ takes minutes on this


def _eval(expression: str, value: Any = None) -> Any:
    template = compile_template("{% " + expression + " %}", "Output")
    return template.evaluate({"input": value, "context": {}}, {})


@pytest.mark.parametrize(
    "expression",
    [
        "$match($states.input, /^(a+)+$/)",
        "$contains($states.input, /^(a|a)+$/)",
        "$replace($states.input, /(a*)*$/, 'x')",
        "$split($states.input, /(a+)+c/)",
        "$states.input ~> /^(a+)+$/",
    ],
)
def test_catastrophic_patterns_return_at_once(expression: str) -> None:
    try:
        _eval(expression, _EVIL)
    except StatesError as exc:  # $match finding nothing returns undefined
        assert "returned nothing" in (exc.cause or "")


def test_jsonata_semantics_are_kept() -> None:
    assert _eval('$match("aXbxc", /x/i)') == [
        {"match": "X", "index": 1, "groups": []},
        {"match": "x", "index": 3, "groups": []},
    ]
    assert _eval('$match("ab\\ncd", /^c/m)') == {"match": "c", "index": 3, "groups": []}
    assert _eval('$match("k=v; x=y", /(\\w)=(\\w)/, 1)') == {
        "match": "k=v",
        "index": 0,
        "groups": ["k", "v"],
    }
    assert _eval('$replace("zabab", /a(b)/, "[$1$2$$]")') == "z[b$][b$]"
    assert _eval('$replace("zabab", /a(b)/, "<$0>", 1)') == "z<ab>ab"
    assert _eval('$replace("zab", /a(b)/, "\\\\n")') == "z\\n"
    assert _eval('$replace("zabab", /a(b)/, function($m){$uppercase($m.match)})') == "zABAB"
    assert _eval('$split("a1b22c", /\\d+/)') == ["a", "b", "c"]
    assert _eval('$contains("hello", /l+/)') is True
    assert _eval('$contains("é€😀", /😀$/)') is True


@pytest.mark.parametrize("pattern", ["(a)\\1", "a(?=b)", "(?<!a)b", "a(?!b)"])
def test_backreferences_and_lookaround_fail_the_evaluation_never_fall_back(pattern: str) -> None:
    with pytest.raises(StatesError) as caught:
        _eval(f'$contains("aab", /{pattern}/) and true')
    assert caught.value.error == StatesErrorName.QUERY_EVALUATION_ERROR
    assert "cannot be evaluated" in (caught.value.cause or "")
    assert "RE2" in (caught.value.cause or "")


def test_jsonpath_filter_regex_is_linear() -> None:
    path = compile_path('$[?(@.s =~ "^(a+)+$")]')
    assert path.find([{"s": "a" * 40 + "b"}, {"s": "aaa"}]) == [{"s": "aaa"}]


def test_jsonpath_filter_regex_refused_by_re2_is_a_runtime_error() -> None:
    path = compile_path('$[?(@.s =~ "(a)\\\\1")]')
    with pytest.raises(StatesError) as caught:
        path.find([{"s": "aa"}])
    assert caught.value.error == StatesErrorName.RUNTIME
