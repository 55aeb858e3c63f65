"""JSON text as Step Functions writes it in history events and outputs."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dumps(value: Any) -> str:
    """JSON text as Step Functions records it in history and output (compact)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # e.g. an integer beyond 64 bits: the standard library takes it
        return _ENCODE(value)


_STRICT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def utf8_size(text: str) -> int:
    """The UTF-8 size of ``text`` in bytes (a lone surrogate counted as 3, as if encoded)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def storable_problem(value: Any) -> str | None:
    """Why ``value`` cannot be stored as JSON in UTF-8, or None if it can.

    What a log cannot hold: a string with a lone surrogate (U+D800 to U+DFFF, which
    ``States.StringToJson`` or JSONata can make from ASCII), NaN or Infinity, a
    value that is not JSON, nesting too deep to encode. The answer names the
    problem in ASCII, safe to record as a cause. Fast for the usual case: orjson
    refuses the first and last two kinds itself; only a text with ``null`` in it
    is checked again for NaN and Infinity (which orjson writes as ``null``).
    """
    try:
        data = orjson.dumps(value)
    except TypeError:
        pass
    else:
        if b"null" not in data:
            return None
    try:
        _STRICT(value).encode("utf-8")
    except UnicodeEncodeError as exc:
        char = exc.object[exc.start : exc.end].encode("ascii", "backslashreplace").decode()
        return f"a string holds a lone surrogate ({char}), which UTF-8 cannot encode"
    except ValueError:
        return "a number is NaN or Infinity, which JSON cannot hold"
    except RecursionError:
        return "the value is nested too deeply to encode"
    except TypeError as exc:
        return f"a value is not JSON ({_ascii(str(exc))})"
    return None


def _ascii(text: str, limit: int = 200) -> str:
    return text.encode("ascii", "backslashreplace").decode()[:limit]


def finite_float(text: str) -> float:
    """``json.loads``'s ``parse_float`` that refuses a number too large for a double.

    The standard library reads ``1e999`` as Infinity, which JSON cannot hold.
    """
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"the number {text[:40]} is too large")
    return value
