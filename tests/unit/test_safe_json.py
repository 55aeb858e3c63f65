"""safe_json: JSON from outside within a depth bound, without RecursionError or lone surrogates."""

from __future__ import annotations

import pytest
from stepflow.data.safe_json import JsonRejectedError, depth_exceeds, loads, nesting


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [513, 1024, 1025, 100_000])
def test_deeper_than_the_bound_is_rejected_not_a_recursion_error(depth: int) -> None:
    with pytest.raises(JsonRejectedError, match="deeper than 512"):
        loads(nested(depth), 512)


def test_the_bound_itself_is_accepted_and_counts_containers() -> None:
    assert depth_exceeds(loads(nested(512), 512), 511)
    assert not depth_exceeds(loads(nested(512), 512), 512)
    assert loads("1", 0) == 1
    with pytest.raises(JsonRejectedError):
        loads("[]", 0)


@pytest.mark.parametrize(
    "text", ['"\\ud800"', '"\\udc00\\ud800"', '{"\\udfff": 1}', b'"\xed\xa0\x80"', b'"\xff"']
)
def test_lone_surrogates_and_bad_utf8_are_rejected(text: str | bytes) -> None:
    with pytest.raises(JsonRejectedError):
        loads(text, 512)


def test_a_raw_surrogate_in_a_str_is_rejected_and_a_pair_accepted() -> None:
    with pytest.raises(JsonRejectedError):
        loads('"\ud800"', 512)
    assert loads('"\\ud83d\\ude00"', 512) == "\U0001f600"


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}', "[1e400]", "-1e999"])
def test_nan_infinity_and_numbers_past_a_double_are_rejected(text: str) -> None:
    # review: the standard library read these, and the log then stored them as null
    # (StartExecution with input "NaN" SUCCEEDED with output null)
    with pytest.raises(JsonRejectedError, match="not valid JSON"):
        loads(text, 512)
    assert loads("[1e300, 123456789012345678901234567890]", 512)[0] == 1e300


def test_what_only_the_standard_library_reads_is_read_within_the_bound() -> None:
    with pytest.raises(JsonRejectedError, match="deeper"):
        loads("[" * 600 + "1e400" + "]" * 600, 512)
    with pytest.raises(JsonRejectedError, match="deeper"):
        loads("[" * 100_000 + "1e400", 512)  # invalid and deep: never reaches the recursive parser
    with pytest.raises(JsonRejectedError, match="surrogate"):
        loads('["\\ud800", 1e400]', 512)
    with pytest.raises(JsonRejectedError, match="not valid JSON"):
        loads("{", 512)


def test_nesting_skips_strings_even_unterminated_or_escaped() -> None:
    assert nesting('[{"a": "[[[\\"["}, [[1]]]') == 3
    assert nesting('"unterminated [[[') == 0
    assert nesting('"\\"' * 1000) == 0
    assert nesting("[[]]]]][[[") == 2  # the parser stops at the first unmatched bracket
