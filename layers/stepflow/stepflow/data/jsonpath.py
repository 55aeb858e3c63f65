"""ASL JSONPath: compiled paths over JSON values.

A *reference path* (``$.a.b[0]``, ``$['x y']``) selects one node and can be
written to (ResultPath). Other paths (wildcards, slices, filters, recursive
descent) select a list of matches and are evaluated by ``jsonpath-ng``, its
filters applied as AWS (Jayway) applies them (:mod:`stepflow.data.jsonpath_filters`).
Paths are compiled once and cached; evaluation never mutates its input.

The root is ``$`` (the state's input), ``$$`` (the context object) or
``$name`` (a workflow variable); :class:`Path.root` says which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

Root = Literal["input", "context", "variable"]

_MISSING: Any = object()

# one step of a reference path: .name | ['name'] | ["name"] | [index]
_STEP = re.compile(
    r"""\.(?P<dot>[^.\[\]\s'"*?@()]+)"""
    r"""|\[\s*'(?P<sq>(?:[^'\\]|\\.)*)'\s*\]"""
    r"""|\[\s*"(?P<dq>(?:[^"\\]|\\.)*)"\s*\]"""
    r"""|\[\s*(?P<idx>-?\d+)\s*\]"""
)
_VARIABLE_ROOT = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


class PathSyntaxError(ValueError):
    """A string that is not a valid ASL JSONPath."""


class PathNotFoundError(LookupError):
    """A reference path selects nothing in the given value."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"No results for path: {path.normalized}")
        self.path = path


@dataclass(frozen=True, slots=True)
class Path:
    """A compiled ASL JSONPath.

    ``steps`` is set for reference paths (keys are ``str``, indices ``int``);
    ``general`` holds the jsonpath-ng expression of any other path.
    """

    text: str
    root: Root
    variable: str | None
    steps: tuple[str | int, ...] | None
    general: Any = None

    @property
    def is_reference(self) -> bool:
        """Whether the path selects at most one node (and so can be written to)."""
        return self.steps is not None

    @property
    def normalized(self) -> str:
        """The path in bracket notation, as Step Functions prints it in errors."""
        if self.steps is None:
            return self.text
        head = {"input": "$", "context": "$$", "variable": f"${self.variable}"}[self.root]
        return head + "".join(f"[{s}]" if isinstance(s, int) else f"['{s}']" for s in self.steps)

    def find(self, value: Any) -> Any:
        """Return the selected value; a general path returns the list of its matches.

        Raises :class:`PathNotFoundError` when a reference path selects nothing.
        """
        if self.steps is None:
            return [m.value for m in self.general.find(value)]
        for step in self.steps:
            if isinstance(step, int):
                if not isinstance(value, list) or not -len(value) <= step < len(value):
                    raise PathNotFoundError(self)
            elif not isinstance(value, dict) or step not in value:
                raise PathNotFoundError(self)
            value = value[step]
        return value

    def get(self, value: Any, default: Any = None) -> Any:
        """Like :meth:`find` but return ``default`` when nothing is selected."""
        try:
            return self.find(value)
        except PathNotFoundError:
            return default

    def exists(self, value: Any) -> bool:
        """Whether the path selects something in ``value``."""
        if self.steps is None:
            return bool(self.general.find(value))
        return self.get(value, _MISSING) is not _MISSING

    def put(self, target: Any, value: Any) -> Any:
        """Return a copy of ``target`` with ``value`` written at this reference path.

        Only the containers along the path are copied. Missing objects along
        the way are created. Raises :class:`PathNotFoundError` when a step
        meets a value that is not an object (or an out-of-range index).
        """
        steps = self.steps
        if steps is None:
            raise PathSyntaxError(f"cannot write to the non-reference path {self.text!r}")
        if len(steps) == 1 and isinstance(target, dict) and isinstance(steps[0], str):
            copy_dict = dict(target)  # _put's own path for one key into an object, inline
            copy_dict[steps[0]] = value
            return copy_dict
        return self._put(target, 0, value)

    def _put(self, node: Any, i: int, value: Any) -> Any:
        steps = self.steps
        assert steps is not None
        if i == len(steps):
            return value
        step = steps[i]
        if isinstance(step, int):
            if not isinstance(node, list) or not -len(node) <= step < len(node):
                raise PathNotFoundError(self)
            copy_list = list(node)
            copy_list[step] = self._put(node[step], i + 1, value)
            return copy_list
        if node is None or node is _MISSING:
            node = {}
        if not isinstance(node, dict):
            raise PathNotFoundError(self)
        copy_dict = dict(node)
        copy_dict[step] = self._put(node.get(step, _MISSING), i + 1, value)
        return copy_dict


@lru_cache(maxsize=4096)
def compile_path(text: str) -> Path:
    """Compile an ASL JSONPath, raising :class:`PathSyntaxError` if it is not one."""
    if not isinstance(text, str) or not text.startswith("$"):
        raise PathSyntaxError(f"a path must start with '$': {text!r}")
    root: Root
    variable = None
    if text.startswith("$$"):
        root, rest = "context", text[2:]
    elif (m := _VARIABLE_ROOT.match(text)) is not None:
        root, variable, rest = "variable", m.group(1), text[m.end() :]
    else:
        root, rest = "input", text[1:]
    rest = _dot_bracket(rest)
    steps = _reference_steps(rest)
    if steps is not None:
        return Path(text, root, variable, steps)
    return Path(text, root, variable, None, _compile_general("$" + rest, text))


def _dot_bracket(rest: str) -> str:
    """``.[`` read as ``[``: AWS (Jayway JsonPath) accepts ``$.[0]`` and ``$.[?(@.x > 0)]``.

    A dot directly before a bracket is dropped outside quotes and filters; a
    recursive descent (``..[``) keeps both dots.
    """
    if ".[" not in rest:
        return rest
    out: list[str] = []
    quote = ""
    depth = 0
    for i, char in enumerate(rest):
        if quote:
            if char == quote and rest[i - 1] != "\\":
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth = max(depth - 1, 0)
        elif (
            char == "."
            and not depth
            and rest[i + 1 : i + 2] == "["
            and (i == 0 or rest[i - 1] != ".")
        ):
            continue
        out.append(char)
    return "".join(out)


def _reference_steps(rest: str) -> tuple[str | int, ...] | None:
    steps: list[str | int] = []
    pos = 0
    while pos < len(rest):
        m = _STEP.match(rest, pos)
        if m is None:
            return None
        if m.group("dot") is not None:
            steps.append(m.group("dot"))
        elif m.group("sq") is not None:
            steps.append(m.group("sq").replace("\\'", "'"))
        elif m.group("dq") is not None:
            steps.append(m.group("dq").replace('\\"', '"'))
        else:
            steps.append(int(m.group("idx")))
        pos = m.end()
    return tuple(steps)


def _compile_general(expr: str, original: str) -> Any:
    from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
    from jsonpath_ng.ext import filter as filters
    from jsonpath_ng.ext.parser import parse

    from stepflow.data.regex import filter_search

    # the library's `=~` backtracks with `re`; ours matches in linear time (RE2)
    filters.OPERATOR_MAP["=~"] = filter_search

    from stepflow.data.jsonpath_filters import jayway_filters

    # jsonpath-ng writes filters as [?(...)] or [?...]; both are accepted.
    try:
        return jayway_filters(parse(expr))
    except (JsonPathLexerError, JsonPathParserError, Exception) as exc:
        raise PathSyntaxError(f"invalid JSONPath {original!r}: {exc}") from exc


def is_path(text: object) -> bool:
    """Whether ``text`` is a syntactically valid ASL JSONPath."""
    if not isinstance(text, str):
        return False
    try:
        compile_path(text)
    except PathSyntaxError:
        return False
    return True


def is_reference_path(text: object) -> bool:
    """Whether ``text`` is a valid reference path (one that can be written to)."""
    if not isinstance(text, str):
        return False
    try:
        return compile_path(text).is_reference
    except PathSyntaxError:
        return False
