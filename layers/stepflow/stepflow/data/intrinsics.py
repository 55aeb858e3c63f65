"""The 18 intrinsic functions of ASL (``States.Format``, ``States.MathAdd``, ...).

``compile_intrinsic(text)`` parses a call once (cached) and returns a closure
that evaluates it in a :class:`~stepflow.data.scope.Scope`. The behaviour
follows what Step Functions does, not only what it documents:

* A malformed call, an unknown function name or an invalid escape is an
  :class:`IntrinsicSyntaxError` at compile time (AWS rejects the definition).
* Everything else fails at run time with ``States.Runtime`` (which ``States.ALL``
  does not catch), including a wrong number of arguments and a Format template
  whose ``{}`` count does not match. The cause names the whole expression as
  written: ``The function '<text>' had the following error: <detail>``, where
  the detail is ``Invalid arguments in States.X`` or, for an argument path that
  selects nothing, ``The JsonPath argument for the field '$.a' could not be
  found in the input '<state input>'``. The engine prefixes the usual
  ``An error occurred while executing the state ...``.
* Values are rendered the Java way where AWS does (see :mod:`stepflow.data.java_text`):
  ``States.Format`` prints an object as ``{a=1, b=[x, y]}`` and a float as
  ``Double.toString`` would (``1.0E20``); ``States.JsonToString`` writes compact
  JSON with Java floats.
* Integer arguments of ArrayPartition, ArrayRange, ArrayGetItem and MathRandom
  are truncated towards zero; MathAdd rounds half up (``Math.round``) and works
  in 32-bit integers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from stepflow.data.budget import Budget
from stepflow.data.intrinsic_parser import (
    Call,
    IntrinsicSyntaxError,
    Literal,
    Node,
    PathArgument,
    parse_intrinsic,
)
from stepflow.data.java_text import to_java_string, to_json_text
from stepflow.data.jsonpath import PathNotFoundError
from stepflow.data.safe_json import ORJSON_MAX_DEPTH, nesting
from stepflow.data.scope import Scope
from stepflow.data.serialize import finite_float
from stepflow.errors import StatesError, StatesErrorName

__all__ = ["IntrinsicSyntaxError", "compile_intrinsic", "to_java_string", "to_json_text"]

Evaluator = Callable[[Scope], Any]

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_MAX_RANGE_ITEMS = 1000
_MAX_TEXT_LENGTH = 10_000
_HASHES = {
    "MD5": "md5",
    "SHA-1": "sha1",
    "SHA-256": "sha256",
    "SHA-384": "sha384",
    "SHA-512": "sha512",
}
_BASE64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BASE64_VALUES = {c: i for i, c in enumerate(_BASE64_ALPHABET)}
_BASE64_VALUES.update({"-": 62, "_": 63})


class _Failure(Exception):
    """An evaluation failure; the compiled call turns it into a ``States.Runtime`` error."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class _Function:
    min_args: int
    max_args: int | None
    apply: Callable[[str, list[Any], tuple[Node, ...]], Any]
    constant_cost: bool = False
    """Its cost does not grow with its arguments: the budget is checked before it only."""
    specialize: Callable[[str, tuple[Node, ...]], Callable[[list[Any]], Any] | None] | None = None
    """``apply`` for these argument nodes with what they fix resolved once (None: no shortcut)."""


@lru_cache(maxsize=4096)
def compile_intrinsic(text: str) -> Callable[[Scope], Any]:
    """Compile an intrinsic function call such as ``States.Format('{}', $.x)``.

    Raises :class:`IntrinsicSyntaxError` for a malformed call or an unknown
    function. The returned callable raises :class:`~stepflow.errors.StatesError`
    (``States.Runtime``) when the call fails.
    """
    node = parse_intrinsic(text)
    if isinstance(node, Call):  # the outermost call reports the failure itself: one call less
        return _compile_call(node, text)
    evaluate = _compile(node)

    def run(scope: Scope) -> Any:
        try:
            return evaluate(scope)
        except _Failure as exc:
            raise _failed(text, exc) from None

    return run


def _failed(text: str, exc: _Failure) -> StatesError:
    return StatesError(
        StatesErrorName.RUNTIME, f"The function '{text}' had the following error: {exc.detail}"
    )


def _compile(node: Node) -> Evaluator:
    if isinstance(node, Literal):
        value = node.value
        return lambda _scope: value
    if isinstance(node, PathArgument):
        return _compile_path(node)
    return _compile_call(node, None)


def _compile_call(node: Call, text: str | None) -> Evaluator:
    """A call; ``text`` (the whole expression) when it is the outermost one.

    The arguments are evaluated first (a missing path is reported before a wrong
    number of arguments); the budget is checked before the function runs, and after
    it unless its cost is constant (a call over a large array is one step).
    """
    function = _FUNCTIONS.get(node.name)
    if function is None:
        raise IntrinsicSyntaxError(f"unknown intrinsic function {node.name!r}")
    args = tuple(_compile(arg) for arg in node.args)
    name, nodes = node.name, node.args
    count = len(args)
    fits = count >= function.min_args and (function.max_args is None or count <= function.max_args)
    if not fits:

        def misfit(scope: Scope) -> Any:
            try:
                for arg in args:
                    arg(scope)
                raise _invalid(name)
            except _Failure as exc:
                if text is None:
                    raise
                raise _failed(text, exc) from None

        return misfit
    general = function.apply
    special = function.specialize(name, nodes) if function.specialize is not None else None
    after = not function.constant_cost
    pair = count == 2
    if pair:  # two arguments, the usual call: a literal one is taken as it is, without a call
        first, second = args
        fixed_first = isinstance(nodes[0], Literal)
        fixed_second = isinstance(nodes[1], Literal)
        first_value = nodes[0].value if isinstance(nodes[0], Literal) else None
        second_value = nodes[1].value if isinstance(nodes[1], Literal) else None
        # a one-key path into $ (_compile_path's read_key): read here when the key is there
        first_key: str | None = getattr(first, "key", None)
        second_key: str | None = getattr(second, "key", None)
        if special is not None and fixed_first != fixed_second:
            literal, key, read = (
                (first_value, second_key, second)
                if fixed_first
                else (second_value, first_key, first)
            )
            keyed = _literal_and_key(special, after, fixed_first, literal, key, read, text)
            if keyed is not None:
                return keyed

    def call(scope: Scope) -> Any:
        try:
            if pair:
                value = scope.input
                values = [
                    first_value
                    if fixed_first
                    else (
                        value[first_key]
                        if first_key is not None and isinstance(value, dict) and first_key in value
                        else first(scope)
                    ),
                    second_value
                    if fixed_second
                    else (
                        value[second_key]
                        if second_key is not None
                        and isinstance(value, dict)
                        and second_key in value
                        else second(scope)
                    ),
                ]
            else:
                values = [arg(scope) for arg in args]
            scope.budget.check()
            result = general(name, values, nodes) if special is None else special(values)
            if after:
                scope.budget.check()
            return result
        except _Failure as exc:
            if text is None:
                raise
            raise _failed(text, exc) from None

    return call


def _literal_and_key(
    special: Callable[[list[Any]], Any],
    after: bool,
    literal_first: bool,
    literal: Any,
    key: str | None,
    read: Evaluator,
    text: str | None,
) -> Evaluator | None:
    """:func:`_compile_call`'s call of two arguments, a literal and a one-key path into ``$``.

    None when the path is not one key (``key`` None): the general call then.

    The usual call (``MathAdd($.i, 1)``, ``Format('iteration {}', $.i)``) with its shape
    resolved once; the same steps: the key read (``read`` reports a missing one), the
    budget checked, the specialized function run.
    """
    if key is None:
        return None

    def on_input(value: Any, budget: Budget) -> Any:
        try:
            if isinstance(value, dict) and key in value:
                arg = value[key]
            else:
                arg = read(Scope(value, budget=budget))  # it reports the missing path
            budget.check()
            result = special([literal, arg] if literal_first else [arg, literal])
            if after:
                budget.check()
            return result
        except _Failure as exc:
            if text is None:
                raise
            raise _failed(text, exc) from None

    def call(scope: Scope) -> Any:
        return on_input(scope.input, scope.budget)

    call.on_input = on_input  # type: ignore[attr-defined]  # see template.input_form
    return call


def _compile_path(node: PathArgument) -> Evaluator:
    """A path argument.

    A reference path into ``$`` is read without a budget check: its cost is its
    length, and the call checks before it runs.
    """
    path = node.path
    shown = "$" + node.text[2:] if node.text.startswith("$$") else node.text

    def missing(scope: Scope) -> _Failure:
        return _Failure(
            f"The JsonPath argument for the field '{shown}' could not be found "
            f"in the input '{to_json_text(scope.input)}'"
        )

    steps = path.steps
    if path.root == "input" and steps is not None and len(steps) == 1 and isinstance(steps[0], str):
        key = steps[0]

        def read_key(scope: Scope) -> Any:
            value = scope.input
            if isinstance(value, dict) and key in value:
                return value[key]
            raise missing(scope)

        read_key.key = key  # type: ignore[attr-defined]
        return read_key
    if path.root == "input" and steps is not None:
        find = path.find

        def read_steps(scope: Scope) -> Any:
            try:
                return find(scope.input)
            except PathNotFoundError:
                raise missing(scope) from None

        return read_steps

    def read(scope: Scope) -> Any:
        try:
            return scope.read(path)
        except PathNotFoundError:
            raise missing(scope) from None

    return read


def _invalid(name: str, detail: str = "") -> _Failure:
    return _Failure(f"Invalid arguments in {name}{detail}")


# --- argument checks ----------------------------------------------------------------


def _is_number(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool)


def _truncated(name: str, value: Any) -> int:
    """An integer argument as AWS reads it: a number, truncated towards zero."""
    if not _is_number(value):
        raise _invalid(name)
    return int(value)


def _rounded(name: str, value: Any) -> int:
    """Java's ``Math.round``: the nearest integer, halves rounded up; must fit 32 bits."""
    if type(value) is int:  # the usual case, rounded to itself (a bool is not an int here)
        if not _INT_MIN <= value <= _INT_MAX:
            raise _invalid(name)
        return value
    if not _is_number(value):
        raise _invalid(name)
    floor = math.floor(value)
    result = floor + 1 if value - floor >= 0.5 else floor
    if not _INT_MIN <= result <= _INT_MAX:
        raise _invalid(name)
    return int(result)


def _array(name: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise _invalid(name)
    return value


def _text(name: str, value: Any, limit: int | None = None) -> str:
    if not isinstance(value, str) or (limit is not None and _java_length(value) > limit):
        raise _invalid(name)
    return value


def _java_length(text: str) -> int:
    """The length Java reports: UTF-16 code units."""
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


# --- the functions ------------------------------------------------------------------


def _format(name: str, args: list[Any], nodes: tuple[Node, ...]) -> str:
    template = args[0]
    if not isinstance(template, str):
        raise _invalid(name)
    first = nodes[0]
    raw = first.raw if isinstance(first, Literal) and first.raw is not None else template
    parts = _template_parts(name, raw)
    values = iter(args[1:])
    if parts.count(None) != len(args) - 1:
        raise _invalid(name, ": number of arguments do not match the occurrences of {}.")
    return "".join([to_java_string(next(values)) if part is None else part for part in parts])


def _format_special(name: str, nodes: tuple[Node, ...]) -> Callable[[list[Any]], str] | None:
    """:func:`_format` for a literal template whose ``{}`` count fits the arguments."""
    first = nodes[0]
    if not isinstance(first, Literal) or not isinstance(first.value, str):
        return None
    raw = first.raw if first.raw is not None else first.value
    try:
        parts = _template_parts(name, raw)
    except _Failure:
        return None  # the general rule reports it, at run time
    if parts.count(None) != len(nodes) - 1:
        return None
    if len(parts) == 3:  # one {}: the usual template
        head, tail = parts[0] or "", parts[2] or ""  # both text: one None, in the middle

        def format_one(args: list[Any]) -> str:
            value = args[1]
            if type(value) is int:  # to_java_string's integer case, inline (a bool is not one)
                return head + str(value) + tail
            return head + to_java_string(value) + tail

        return format_one

    def format_(args: list[Any]) -> str:
        values = iter(args[1:])
        return "".join([to_java_string(next(values)) if part is None else part for part in parts])

    return format_


@lru_cache(maxsize=1024)
def _template_parts(name: str, raw: str) -> tuple[str | None, ...]:
    """Split a Format template into literal text and ``None`` for each ``{}``."""
    parts: list[str | None] = []
    chunk: list[str] = []
    i = 0
    while i < len(raw):
        char = raw[i]
        if char == "\\" and raw[i + 1 : i + 2] in tuple("'{}\\"):
            chunk.append(raw[i + 1])
            i += 2
            continue
        if char == "{":
            if raw[i + 1 : i + 2] != "}":
                raise _Failure(f"Invalid template in {name}: matching '}}' not found for '{{'.")
            parts.extend(("".join(chunk), None))
            chunk = []
            i += 2
            continue
        if char == "}":
            raise _Failure(f"Invalid template in {name}: matching '{{' not found for '}}'.")
        chunk.append(char)
        i += 1
    parts.append("".join(chunk))
    return tuple(parts)


def _string_to_json(name: str, args: list[Any], _nodes: tuple[Node, ...]) -> Any:
    text = _text(name, args[0])
    if not text.strip():
        return None
    # the standard library's parser recurses: bound the nesting first (a linear scan)
    if nesting(text) > ORJSON_MAX_DEPTH:
        raise _invalid(name, f": the JSON nests deeper than {ORJSON_MAX_DEPTH} levels")
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=finite_float)
    except (ValueError, RecursionError):
        raise _invalid(name) from None


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def _partition(name: str, args: list[Any], _nodes: tuple[Node, ...]) -> list[list[Any]]:
    array, size = _array(name, args[0]), _truncated(name, args[1])
    if size <= 0:
        raise _invalid(name)
    return [array[i : i + size] for i in range(0, len(array), size)]


def _range(name: str, args: list[Any], _nodes: tuple[Node, ...]) -> list[int]:
    start, end, step = (_truncated(name, value) for value in args)
    if step == 0:
        raise _invalid(name)
    numbers = range(start, end + (1 if step > 0 else -1), step)
    if len(numbers) > _MAX_RANGE_ITEMS:
        raise _invalid(name)
    return list(numbers)


def _get_item(name: str, args: list[Any], _nodes: tuple[Node, ...]) -> Any:
    array, index = _array(name, args[0]), _truncated(name, args[1])
    if index < 0 or (array and index >= len(array)):
        raise _invalid(name)
    return array[index] if array else None  # AWS answers null for any index of []


def _unique(name: str, args: list[Any], _nodes: tuple[Node, ...]) -> list[Any]:
    seen: set[Any] = set()
    result = []
    for item in _array(name, args[0]):
        key = _equality_key(item)
        if key not in seen:
            seen.add(key)
            result.append(item)
    return result


def _equality_key(value: Any) -> Any:
    """A hashable key under which two values are equal exactly when Java's ``equals`` says so."""
    if isinstance(value, dict):
        return ("o", frozenset((k, _equality_key(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("a", tuple(_equality_key(v) for v in value))
    if isinstance(value, float):
        return ("f", repr(value))
    return (type(value).__name__, value)


def _base64_encode(name: str, args: list[Any], _nodes: tuple[Node, ...]) -> str:
    data = _text(name, args[0], _MAX_TEXT_LENGTH).encode("utf-8", "replace")
    return base64.b64encode(data).decode("ascii")


def _base64_decode(name: str, args: list[Any], _nodes: tuple[Node, ...]) -> str:
    """Decode leniently, as AWS does: skip characters outside the alphabet, stop at ``=``."""
    out = bytearray()
    bits = count = 0
    for char in _text(name, args[0], _MAX_TEXT_LENGTH):
        if char == "=":
            break
        value = _BASE64_VALUES.get(char)
        if value is None:
            continue
        bits, count = bits << 6 | value, count + 1
        if count == 4:
            out += bits.to_bytes(3, "big")
            bits = count = 0
    if count == 2:
        out.append(bits >> 4 & 0xFF)
    elif count == 3:
        out += (bits >> 2 & 0xFFFF).to_bytes(2, "big")
    return out.decode("utf-8", "replace")


def _hash(name: str, args: list[Any], _nodes: tuple[Node, ...]) -> str:
    data, algorithm = args
    text = _text(name, data if isinstance(data, str) else to_java_string(data), _MAX_TEXT_LENGTH)
    if not isinstance(algorithm, str) or algorithm not in _HASHES:
        raise _invalid(name)
    digest = hashlib.new(_HASHES[algorithm], usedforsecurity=False)
    digest.update(text.encode("utf-8", "replace"))
    return digest.hexdigest()


def _json_merge(name: str, args: list[Any], _nodes: tuple[Node, ...]) -> dict[str, Any]:
    first, second, deep = args
    if not isinstance(first, dict) or not isinstance(second, dict) or deep is not False:
        raise _invalid(name)  # deep merging (true) is not supported by Step Functions
    return {**first, **second}


def _math_random(name: str, args: list[Any], _nodes: tuple[Node, ...]) -> int:
    start, end = _truncated(name, args[0]), _truncated(name, args[1])
    if not _INT_MIN <= start < end <= _INT_MAX or end - start > _INT_MAX:
        raise _invalid(name)
    if len(args) == 2:
        return random.randrange(start, end)
    return start + _java_random_int(_truncated(name, args[2]), end - start)


def _java_random_int(seed: int, bound: int) -> int:
    """``new java.util.Random(seed).nextInt(bound)``: the same seed gives the same number."""
    mask = (1 << 48) - 1
    state = (seed ^ 0x5DEECE66D) & mask

    def next31() -> int:
        nonlocal state
        state = (state * 0x5DEECE66D + 0xB) & mask
        return state >> 17

    bits = next31()
    if bound & (bound - 1) == 0:
        return (bound * bits) >> 31
    while bits - bits % bound + bound - 1 >= 2**31:
        bits = next31()
    return bits % bound


def _math_add(name: str, args: list[Any], _nodes: tuple[Node, ...]) -> int:
    total = _rounded(name, args[0]) + _rounded(name, args[1])
    if not _INT_MIN <= total <= _INT_MAX:
        raise _invalid(name)
    return total


def _math_add_special(name: str, nodes: tuple[Node, ...]) -> Callable[[list[Any]], int] | None:
    """:func:`_math_add` with a literal 32-bit integer as its second argument (``$.i, 1``)."""
    second = nodes[1]
    if not isinstance(second, Literal) or type(second.value) is not int:
        return None
    step: int = second.value
    if not _INT_MIN <= step <= _INT_MAX:
        return None

    def add(args: list[Any]) -> int:
        first = args[0]
        if type(first) is int and _INT_MIN <= first <= _INT_MAX:  # _rounded's integer case
            total = first + step
            if _INT_MIN <= total <= _INT_MAX:
                return total
        return _math_add(name, args, nodes)  # the general rule, and its errors

    return add


def _string_split(name: str, args: list[Any], _nodes: tuple[Node, ...]) -> list[str]:
    """Split on any of the delimiter characters, dropping empty pieces (Java's StringTokenizer)."""
    text, delimiters = _text(name, args[0]), _text(name, args[1])
    if not delimiters:
        return [text] if text else []
    pieces = re.split("[" + "".join(re.escape(c) for c in delimiters) + "]", text)
    return [piece for piece in pieces if piece]


_FUNCTIONS: dict[str, _Function] = {
    "States.Format": _Function(1, None, _format, specialize=_format_special),
    "States.StringToJson": _Function(1, 1, _string_to_json),
    "States.JsonToString": _Function(1, 1, lambda _n, a, _a: to_json_text(a[0])),
    "States.Array": _Function(0, None, lambda _n, a, _a: list(a)),
    "States.ArrayPartition": _Function(2, 2, _partition),
    "States.ArrayContains": _Function(
        2, 2, lambda n, a, _a: any(_same(item, a[1]) for item in _array(n, a[0]))
    ),
    "States.ArrayRange": _Function(3, 3, _range),
    "States.ArrayGetItem": _Function(2, 2, _get_item),
    "States.ArrayLength": _Function(
        1, 1, lambda n, a, _a: len(_array(n, a[0])), constant_cost=True
    ),
    "States.ArrayUnique": _Function(1, 1, _unique),
    "States.Base64Encode": _Function(1, 1, _base64_encode),
    "States.Base64Decode": _Function(1, 1, _base64_decode),
    "States.Hash": _Function(2, 2, _hash),
    "States.JsonMerge": _Function(3, 3, _json_merge),
    "States.MathRandom": _Function(2, 3, _math_random, constant_cost=True),
    "States.MathAdd": _Function(2, 2, _math_add, constant_cost=True, specialize=_math_add_special),
    "States.StringSplit": _Function(2, 2, _string_split),
    "States.UUID": _Function(0, 0, lambda _n, _a, _b: str(uuid.uuid4()), constant_cost=True),
}


def _same(item: Any, target: Any) -> bool:
    """ArrayContains equality: AWS compares the Java string forms.

    So ``true`` matches ``"true"``, ``1`` does not match ``1.0``, and key order matters.
    """
    return item is target or to_java_string(item) == to_java_string(target)
