r"""Parsing intrinsic function calls (``States.Format('{}', $.a)``) into a small syntax tree.

The grammar, as Step Functions accepts it in JSONPath mode::

    call     := "States." NAME "(" [ argument { "," argument } ] ")"
    argument := string | number | "true" | "false" | "null" | path | call
    string   := "'" { char | "\'" | "\{" | "\}" | "\\" } "'"
    number   := JSON number (-1, 2.5, 1e3)
    path     := "$..." | "$$..." | "$name..."   (any ASL JSONPath)

Whitespace may surround arguments. A backslash in a string literal may only
escape ``'``, ``{``, ``}`` or ``\``; any other escape (``\n`` included) is a
syntax error, as on AWS. Raw control characters (a literal newline, say) are
allowed in strings. The parser does not know which functions exist or how many
arguments they take: :mod:`stepflow.data.intrinsics` checks that.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, NoReturn

from stepflow.data.jsonpath import Path, PathSyntaxError, compile_path

_NAME = re.compile(r"States\.[A-Za-z][A-Za-z0-9]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_KEYWORDS: tuple[tuple[str, Any], ...] = (("true", True), ("false", False), ("null", None))
_ESCAPABLE = "'{}\\"


class IntrinsicSyntaxError(ValueError):
    """A string that is not a well-formed intrinsic function call."""


@dataclass(frozen=True, slots=True)
class Literal:
    """A literal argument. ``raw`` is a string literal's text between its quotes, escapes intact."""

    value: Any
    raw: str | None = None


@dataclass(frozen=True, slots=True)
class PathArgument:
    """A path argument: ``text`` as written and the compiled path."""

    text: str
    path: Path


@dataclass(frozen=True, slots=True)
class Call:
    """A function call: the full name (``States.Format``) and its arguments."""

    name: str
    args: tuple[Literal | PathArgument | Call, ...]


Node = Literal | PathArgument | Call


def parse_intrinsic(text: str) -> Call:
    """Parse ``text`` into a :class:`Call`; raise :class:`IntrinsicSyntaxError` if malformed."""
    if not isinstance(text, str):
        raise IntrinsicSyntaxError(f"an intrinsic function call must be a string: {text!r}")
    return _Parser(text).parse()


class _Parser:
    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str) -> NoReturn:
        raise IntrinsicSyntaxError(
            f"invalid intrinsic function call {self.text!r}: {message} (at offset {self.pos})"
        )

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse(self) -> Call:
        self.skip_space()
        call = self.call()
        self.skip_space()
        if self.pos != len(self.text):
            self.fail("unexpected text after the call")
        return call

    def call(self) -> Call:
        match = _NAME.match(self.text, self.pos)
        if match is None:
            self.fail("expected a function name such as States.Format")
        self.pos = match.end()
        if self.peek() != "(":
            self.fail(f"expected '(' after {match.group()}")
        self.pos += 1
        args: list[Node] = []
        self.skip_space()
        if self.peek() == ")":
            self.pos += 1
            return Call(match.group(), ())
        while True:
            self.skip_space()
            args.append(self.argument())
            self.skip_space()
            char = self.peek()
            self.pos += 1
            if char == ")":
                return Call(match.group(), tuple(args))
            if char != ",":
                self.pos -= 1
                self.fail("expected ',' or ')'")

    def argument(self) -> Node:
        char = self.peek()
        if char == "'":
            return self.string()
        if char == "$":
            return self.path()
        if char == "-" or char.isdigit():
            return self.number()
        if self.text.startswith("States.", self.pos):
            return self.call()
        for word, value in _KEYWORDS:
            end = self.pos + len(word)
            if self.text.startswith(word, self.pos) and not _is_word_char(self.text, end):
                self.pos = end
                return Literal(value)
        self.fail("expected an argument (a string, number, true, false, null, path or call)")

    def string(self) -> Literal:
        start = self.pos + 1
        i = start
        chars: list[str] = []
        while True:
            if i >= len(self.text):
                self.fail("unterminated string literal")
            char = self.text[i]
            if char == "'":
                break
            if char == "\\":
                escaped = self.text[i + 1 : i + 2]
                if not escaped or escaped not in _ESCAPABLE:
                    self.pos = i
                    self.fail(f"invalid escape sequence '\\{escaped}' in a string literal")
                chars.append(escaped)
                i += 2
                continue
            chars.append(char)
            i += 1
        self.pos = i + 1
        return Literal("".join(chars), self.text[start:i])

    def number(self) -> Literal:
        match = _NUMBER.match(self.text, self.pos)
        if match is None or _is_word_char(self.text, match.end(), extra="."):
            self.fail("malformed number")
        token = match.group()
        value: int | float
        if any(c in token for c in ".eE"):
            value = float(token)
            if not math.isfinite(value):
                self.fail("number out of range")
        else:
            value = int(token)
        self.pos = match.end()
        return Literal(value)

    def path(self) -> PathArgument:
        start = i = self.pos
        depth = 0
        quote = ""
        while i < len(self.text):
            char = self.text[i]
            if quote:
                if char == "\\":
                    i += 1
                elif char == quote:
                    quote = ""
            elif char in "'\"" and depth:
                quote = char
            elif char in "[(":
                depth += 1
            elif char in "])":
                if not depth:
                    break
                depth -= 1
            elif not depth and (char == "," or char.isspace()):
                break
            i += 1
        if quote or depth:
            self.fail("unterminated path")
        text = self.text[start:i]
        try:
            path = compile_path(text)
        except PathSyntaxError as exc:
            self.fail(f"invalid path {text!r}: {exc}")
        self.pos = i
        return PathArgument(text, path)


def _is_word_char(text: str, index: int, extra: str = "") -> bool:
    if index >= len(text):
        return False
    char = text[index]
    return char.isalnum() or char == "_" or char in extra
