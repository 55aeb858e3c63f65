"""What Step Functions changes in JSONata: its functions and its error texts.

Step Functions evaluates JSONata 2.0.6 (the JavaScript reference engine) with
six functions of its own -- ``$partition``, ``$range``, ``$hash``,
``$random([seed])``, ``$uuid`` and ``$parse`` -- and without ``$eval``.
:func:`register_step_functions` installs them on a compiled
``jsonata-python`` expression, together with a few fixes where the Python
port raises a bare Python exception where the reference engine raises a coded
error. :func:`error_message` renders a library error the way jsonata-js
words it (``T0412: Argument 1 of function "sum" must be an array of
"numbers"``), which is the text AWS puts in its causes.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from jsonata import JException, Jsonata
from jsonata.utils import Utils

from stepflow.data.serialize import finite_float


class BareError(JException):  # type: ignore[misc]
    """An evaluation error without a JSONata error code; causes show it after a colon.

    It subclasses the library's exception so that the library passes it through
    unchanged (it rewraps other exceptions raised inside ``and``/``or``).
    """

    def __init__(self, message: str) -> None:
        super().__init__("", -1)
        self.message = message
        self.args = (message,)

    def __str__(self) -> str:
        return self.message


class FunctionError(BareError):
    """A Step Functions JSONata function refused its arguments."""


_HASH_ALGORITHMS = {
    "MD5": "md5",
    "SHA-1": "sha1",
    "SHA-256": "sha256",
    "SHA-384": "sha384",
    "SHA-512": "sha512",
}
_MAX_RANGE_ITEMS = 1_000_000


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _partition(array: Any, size: Any) -> Any:
    if array is None:
        return None
    if not _is_number(size) or size != int(size) or size < 1:
        raise FunctionError(
            "The chunk size argument of the partition function must be a positive integer, "
            f"but was {js_json(size)}"
        )
    step = int(size)
    items = list(array)
    return [items[i : i + step] for i in range(0, len(items), step)]


def _range(start: Any, end: Any, step: Any) -> Any:
    step = 1 if step is None else step
    if step == 0:
        raise FunctionError("The step argument of the range function must not be zero")
    if (end - start) / step + 1 > _MAX_RANGE_ITEMS:
        raise FunctionError(f"The range function cannot return more than {_MAX_RANGE_ITEMS} items")
    values = []
    value = start
    while (step > 0 and value <= end) or (step < 0 and value >= end):
        values.append(value)
        value = start + len(values) * step
    # a JSONata sequence: like the range operator, one item is returned unwrapped
    return Utils.create_sequence_from_iter(values)


def _hash(data: Any, algorithm: Any) -> Any:
    if data is None:
        return None
    name = _HASH_ALGORITHMS.get(algorithm)
    if name is None:
        raise FunctionError(
            f"The hash algorithm {js_json(algorithm)} is not supported; "
            f"use one of {', '.join(_HASH_ALGORITHMS)}"
        )
    return hashlib.new(name, data.encode("utf-8")).hexdigest()


def _random(seed: Any) -> float:
    if seed is None:
        return random.random()
    if isinstance(seed, float) and seed.is_integer():
        seed = int(seed)
    return random.Random(seed).random()


def _uuid() -> str:
    return str(uuid.uuid4())


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON value {name}")


def _parse(text: Any) -> Any:
    if text is None:
        return None
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=finite_float)
    except ValueError as exc:
        raise FunctionError(
            f"The argument of the parse function is not valid JSON: {js_json(text)}"
        ) from exc
    return Utils.NULL_VALUE if value is None else value


class _Callable(Jsonata.JFunctionCallable):  # type: ignore[misc]
    """Adapts a Python function to the library's ``call(input, args)`` protocol."""

    def __init__(self, impl: Callable[..., Any]) -> None:
        self.impl = impl

    def call(self, input: Any, args: Sequence[Any] | None) -> Any:
        return self.impl(*(args or ()))


class _Guarded(Jsonata.JFunctionCallable):  # type: ignore[misc]
    """A built-in whose Python exceptions are turned into the reference engine's errors."""

    def __init__(self, name: str, to_error: Callable[[list[Any]], JException]) -> None:
        self.native = Jsonata.static_frame.lookup(name)
        self.to_error = to_error

    def call(self, input: Any, args: Sequence[Any] | None) -> Any:
        try:
            return self.native.call(input, args)
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise self.to_error([*(args or ()), None, None]) from exc


# name -> (implementation, signature); None removes the function
_FUNCTIONS: dict[str, tuple[Jsonata.JFunctionCallable, str] | None] = {
    "partition": (_Callable(_partition), "<an:a>"),
    "range": (_Callable(_range), "<nnn?:a>"),
    "hash": (_Callable(_hash), "<s-s:s>"),
    "random": (_Callable(_random), "<n?:n>"),
    "uuid": (_Callable(_uuid), "<:s>"),
    "parse": (_Callable(_parse), "<s-:x>"),
    "eval": None,
    "number": (_Guarded("number", lambda a: JException("D3030", -1, a[0])), "<(nsb)-:n>"),
    "power": (_Guarded("power", lambda a: JException("D3061", -1, a[0], a[1])), "<n-n:n>"),
    "toMillis": (_Guarded("toMillis", lambda a: JException("D3110", -1, a[0])), "<s-s?:n>"),
    "sort": (_Guarded("sort", lambda a: JException("D3070", -1)), "<af?:a>"),
}


def register_step_functions(expression: Jsonata) -> None:
    """Install the Step Functions function library on a compiled expression."""
    for name, spec in _FUNCTIONS.items():
        if spec is None:
            expression.register_function(name, None)
        else:
            expression.register_function(name, Jsonata.JFunction(spec[0], spec[1]))


# --- error texts ------------------------------------------------------------

# The Python port renders "function" as "Object" and fills placeholders
# positionally; jsonata-js names them and JSON-encodes {{x}} (not {{{x}}}).
_TEMPLATES = {
    code: re.sub(r"\bObject\b", "function", text) for code, text in JException.error_codes.items()
}
_PLACEHOLDER = re.compile(r"\{\{\{(\w+)\}\}\}|\{\{(\w+)\}\}")
# where the port keeps each placeholder's value, when not in positional order
_SOURCES = {"D1002": ("expected",), "T0411": ("expected", "-"), "D3100": ("location",)}
_ARRAY_TYPES = {
    "a": "arrays",
    "b": "booleans",
    "f": "functions",
    "n": "numbers",
    "o": "objects",
    "s": "strings",
}


def error_message(error: JException) -> str:
    """The reference engine's text for a library error: ``"<code>: <message>"``."""
    code = error.error
    template = _TEMPLATES.get(code)
    if template is None:
        return f"{code}: {error}"
    sources = _SOURCES.get(code, ("current", "expected", "extra"))
    values = iter(sources)

    def fill(match: re.Match[str]) -> str:
        source = next(values, "-")
        value = getattr(error, source, None) if source != "-" else None
        if code == "T0412" and match.group(2) == "type" and isinstance(value, str):
            value = _ARRAY_TYPES.get(value[:1], value)
        if value is None:
            return "undefined"
        return str(value) if match.group(1) else js_json(value)

    return f"{code}: {_PLACEHOLDER.sub(fill, template)}"


def js_number(value: float) -> str:
    """A number as JavaScript prints it (``1e+21``, ``1.5e-7``, ``0.00001``, ``3``)."""
    if isinstance(value, int) or (value.is_integer() and abs(value) < 1e21):
        return str(int(value))
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = len(text) + int(exponent)  # position of the decimal point
    if 0 < point <= 21:
        body = text[:point] + ("." + text[point:] if point < len(text) else "")
    elif -6 < point <= 0:
        body = "0." + "0" * -point + text
    else:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        body = f"{mantissa}e{'+' if point - 1 > 0 else '-'}{abs(point - 1)}"
    return ("-" if sign else "") + body


def js_json(value: Any) -> str:
    """``JSON.stringify`` of a library value, as used in error messages."""
    if value is None or isinstance(value, Utils.NullValue):
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):  # never infinite; past 1e308 math.isfinite would raise
        return js_number(value)
    if isinstance(value, float):
        return js_number(value) if math.isfinite(value) else "null"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        items = [f"{json.dumps(str(k), ensure_ascii=False)}:{js_json(v)}" for k, v in value.items()]
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(js_json(v) for v in value) + "]"
    return "undefined"
