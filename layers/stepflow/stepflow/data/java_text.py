"""Values as Step Functions' Java runtime prints them.

``to_java_string`` is ``String.valueOf`` (how ``States.Format`` shows its
arguments), ``to_json_text`` is Jackson's compact JSON (``States.JsonToString``
and the inputs quoted in error causes); both print floats as ``Double.toString``.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

__all__ = ["to_java_string", "to_json_text"]

_JSON_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}
_JSON_ESCAPED = re.compile(r'[\x00-\x1f"\\]')


def to_java_string(value: Any) -> str:
    """A value as Java's ``String.valueOf`` prints it (how ``States.Format`` shows arguments).

    Strings print bare, ``null`` as ``null``, objects as ``{a=1, b=[x, y]}`` and
    floats as ``Double.toString`` does.
    """
    if isinstance(value, str):
        return value
    if type(value) is int:  # the usual number (a bool is not one here): as _scalar_text prints it
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={to_java_string(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(to_java_string(v) for v in value) + "]"
    return _scalar_text(value)


def to_json_text(value: Any) -> str:
    """Compact JSON as Step Functions (Jackson) writes it: no spaces, Java float notation."""
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, dict):
        items = (f"{_json_string(str(k))}:{to_json_text(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(to_json_text(v) for v in value) + "]"
    return _scalar_text(value)


def _scalar_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _java_double(value)
    return str(value)


def _json_string(text: str) -> str:
    def escape(match: re.Match[str]) -> str:
        char = match.group()
        return _JSON_ESCAPES.get(char) or f"\\u{ord(char):04X}"

    return '"' + _JSON_ESCAPED.sub(escape, text) + '"'


def _java_double(value: float) -> str:
    """``Double.toString``: plain notation in [1e-3, 1e7), else ``d.dddE±n``; shortest digits."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    _, digit_tuple, exponent = Decimal(repr(magnitude)).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + int(exponent)  # value = 0.<digits> * 10**point
    if 1e-3 <= magnitude < 1e7:
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return f"{sign}{digits}{'0' * (point - len(digits))}.0"
        return f"{sign}{digits[:point]}.{digits[point:]}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{point - 1}"
