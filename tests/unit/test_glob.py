"""Choice StringMatches: the linear glob agrees with a brute-force reference and stays fast."""

from __future__ import annotations

from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st
from stepflow.data.glob import glob_matches, segments


def _tokens(pattern: str) -> list[str | None]:
    """The pattern as characters, ``None`` for an unescaped star (the reference's own parse)."""
    out: list[str | None] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and pattern[i + 1 : i + 2] in ("*", "\\"):
            out.append(pattern[i + 1])
            i += 2
        else:
            out.append(None if pattern[i] == "*" else pattern[i])
            i += 1
    return out


def _reference(pattern: str, text: str) -> bool:
    """Every way of splitting ``text`` among the tokens, tried exhaustively."""
    tokens = _tokens(pattern)

    @cache
    def match(t: int, s: int) -> bool:
        if t == len(tokens):
            return s == len(text)
        token = tokens[t]
        if token is None:
            return any(match(t + 1, k) for k in range(s, len(text) + 1))
        return s < len(text) and text[s] == token and match(t + 1, s + 1)

    return match(0, 0)


_PATTERN = st.text(alphabet="ab*\\", max_size=10)
_TEXT = st.text(alphabet="ab*\\", max_size=10)


@settings(max_examples=3000, deadline=None)
@given(_PATTERN, _TEXT)
def test_glob_agrees_with_the_brute_force_reference(pattern: str, text: str) -> None:
    assert glob_matches(pattern, text) == _reference(pattern, text)


def test_escapes_and_literals() -> None:
    assert glob_matches("log-*.txt", "log-2024.txt")
    assert glob_matches("a\\*b", "a*b") and not glob_matches("a\\*b", "axb")
    assert glob_matches("a\\\\*", "a\\anything") and not glob_matches("a\\\\*", "ab")
    assert glob_matches("a\\b", "a\\b")  # a backslash before anything else is itself
    assert glob_matches("*", "") and glob_matches("**", "x") and not glob_matches("", "x")
    assert not glob_matches("ab*ba", "aba")  # prefix and suffix may not overlap
    assert segments("a*b\\*c*") == ("a", "b*c", "")


def test_the_catastrophic_pattern_is_answered_in_one_pass() -> None:
    # `*a` twelve times then `*b` on 40 characters froze the process with `re`;
    # the glob looks at each segment once, so even much larger inputs are immediate
    assert not glob_matches("*a" * 12 + "*b", "a" * 40)
    assert not glob_matches("*a" * 5000 + "*b", "a" * 200_000)
    assert glob_matches("*a" * 5000 + "*b", "a" * 200_000 + "b")
