r"""JSON from outside, parsed within bounds: never a RecursionError, never a lone surrogate.

orjson parses first (C, iterative enough: it refuses nesting past 1,024 levels
and lone surrogates itself). What orjson refuses for another reason (an
integer beyond 64 bits is fine for it, but ``1e400`` is not) is parsed again by
the standard library, but only after a linear scan has shown that the text
nests no deeper than the bound, so the standard library's recursive parser
cannot run out of stack; it refuses ``NaN``, ``Infinity`` and numbers too large
for a double (``1e400``) as orjson does, since no log can hold them. Every
string of a value parsed that way is checked for surrogates, which the
standard library lets through from ``\ud800`` escapes and which no UTF-8
encoder (the log's, DynamoDB's, S3's) can write.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

import orjson

from stepflow.data.serialize import finite_float

ORJSON_MAX_DEPTH = 1024
"""orjson's own nesting bound; a ``max_depth`` above it is capped to it."""

# a string (its closing quote optional, so that no match is ever retried) or one bracket
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonRejectedError(ValueError):
    """The text is not JSON StepFlow accepts; ``reason`` says why in a sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def loads(text: str | bytes, max_depth: int) -> Any:
    """The JSON value of ``text``, or :class:`JsonRejectedError`.

    Rejected: text that is not JSON (or not UTF-8), values nested deeper than
    ``max_depth`` (a scalar has depth 0, ``[]`` depth 1), and strings holding
    a lone surrogate.
    """
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        message = str(exc)
        if "depth limit" in message:
            raise _too_deep(max_depth) from None
        if "surrogate" in message:
            raise JsonRejectedError("it is not UTF-8 or holds a lone surrogate") from None
        value = _fallback(text, max_depth, message)
        if _has_surrogate(value):
            raise JsonRejectedError("it holds a lone surrogate") from None
    if depth_exceeds(value, max_depth):
        raise _too_deep(max_depth)
    return value


def depth_exceeds(value: Any, max_depth: int) -> bool:
    """Whether ``value`` nests deeper than ``max_depth`` (iterative: any depth is safe)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if level + 1 > max_depth:
            return True
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return False


def nesting(text: str) -> int:
    """The deepest bracket nesting of JSON-like ``text``, strings skipped (linear time)."""
    steps = (_STEP.get(token, 0) for token in _TOKEN.findall(text))
    return max(0, max(accumulate(steps), default=0))


def _fallback(text: str | bytes, max_depth: int, message: str) -> Any:
    try:
        decoded = text.decode("utf-8") if isinstance(text, bytes) else text
    except UnicodeDecodeError:
        raise JsonRejectedError("it is not UTF-8") from None
    if nesting(decoded) > min(max_depth, ORJSON_MAX_DEPTH):
        raise _too_deep(max_depth)
    try:
        # NaN, Infinity and numbers past a double are not JSON: the log would store them as null
        return json.loads(decoded, parse_constant=_reject_constant, parse_float=finite_float)
    except (ValueError, RecursionError):
        raise JsonRejectedError(f"it is not valid JSON ({message})") from None


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def _has_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _too_deep(max_depth: int) -> JsonRejectedError:
    bound = min(max_depth, ORJSON_MAX_DEPTH)
    return JsonRejectedError(f"it nests deeper than {bound} levels")


def has_surrogate(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate (a code point no UTF-8 encoder writes)."""
    return _SURROGATE.search(text) is not None
