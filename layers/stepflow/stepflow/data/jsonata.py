"""JSONata templates: the values of fields in ``QueryLanguage: JSONata`` states.

A string that starts with ``{%`` and ends with ``%}`` (nothing before or
after) is a JSONata expression; any other string is a literal. A field's value
is a template: plain JSON with expressions anywhere inside objects and arrays.
Templates are compiled once (cached by their JSON text and field name) and
evaluated against ``$states`` (``input``, ``context`` and, where available,
``result`` and ``errorOutput``) and the workflow variables (``$name``).

Evaluation follows Step Functions: an expression that returns nothing, a
function or a JSONata error fails with ``States.QueryEvaluationError`` and a
cause naming the expression and its field path (``Output/result``,
``Arguments/list[1]``); whole numbers come back as ``int``. Expressions are
checked when compiled: one that does not parse, or that reads ``$``, ``$$``
or an unqualified field name at the top level, raises
:class:`JSONataSyntaxError`. Evaluation never mutates its inputs.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

import jsonata.jsonata as _library
from jsonata import JException, Jsonata
from jsonata.signature import Signature
from jsonata.utils import Utils

from stepflow.data.budget import UNLIMITED, Budget, BudgetExceeded, DecisionDeferred
from stepflow.data.jsonata_functions import BareError, error_message, register_step_functions
from stepflow.data.regex import jsonata_engine
from stepflow.errors import StatesError, StatesErrorName

# the library prints debugging lines on some error paths; keep evaluation silent
_library.print = lambda *args, **kwargs: None

MAX_DEPTH = 1000
"""Deepest nesting of JSONata evaluation before a stack-overflow error."""
MAX_STEPS = 2_000_000
"""Most JSONata evaluation steps one expression may take (an infinite-loop guard)."""

_STACK_OVERFLOW = (
    "Stack overflow error: Check for non-terminating recursive function. "
    " Consider rewriting as tail-recursive."
)
_TOO_LONG = "Expression evaluation timeout: Check for infinite loop"
_INVALID = "INVALID_JSONATA_EXPRESSION"
_UNSUPPORTED = "UNSUPPORTED_JSONATA_EXPRESSION"


class JSONataSyntaxError(ValueError):
    """A JSONata expression Step Functions refuses when the definition is created.

    ``kind`` is ``INVALID_JSONATA_EXPRESSION`` (it does not parse) or
    ``UNSUPPORTED_JSONATA_EXPRESSION`` (it reads ``$``, ``$$`` or an unqualified
    field name at the top level); ``diagnostic`` is AWS's text, e.g.
    ``INVALID_JSONATA_EXPRESSION: Unexpected end of expression``, which AWS
    reports at the field's location (``field`` is its path, e.g. ``Output/a``).
    """

    def __init__(self, field: str, expression: str, kind: str, detail: str) -> None:
        self.field = field
        self.expression = expression
        self.kind = kind
        self.detail = detail
        self.diagnostic = f"{kind}: {detail}"
        super().__init__(f"{self.diagnostic} (field '{field}', expression '{expression}')")


def is_expression(value: object) -> bool:
    """Whether ``value`` is a JSONata string: ``{%`` ... ``%}`` with nothing around it."""
    return isinstance(value, str) and len(value) >= 4 and value[:2] == "{%" and value[-2:] == "%}"


class JSONataTemplate:
    """A compiled field value; see :func:`compile_template`.

    ``raw`` is the field's JSON value and ``field`` its name; ``has_expressions``
    is false for a plain JSON value, and ``expression`` is the text of the
    expression when the whole value is one JSONata string.
    """

    __slots__ = ("_root", "expression", "field", "has_expressions", "raw")

    def __init__(self, raw: Any, field: str) -> None:
        self.raw = raw
        self.field = field
        self._root = _compile(raw, field)
        self.has_expressions = not isinstance(self._root, _Literal)
        self.expression = self._root.text if isinstance(self._root, _Expression) else None

    def evaluate(
        self, states: Mapping[str, Any], variables: Mapping[str, Any], budget: Budget = UNLIMITED
    ) -> Any:
        """The field's value: the template with every expression replaced by its result.

        All expressions see the same ``states`` and ``variables``. Raises
        :class:`StatesError` ``States.QueryEvaluationError`` when one fails or
        returns nothing, or runs out of its expression budget;
        :class:`~stepflow.data.budget.BudgetExceeded` when the decision runs out
        of time (and :class:`~stepflow.data.budget.DecisionDeferred` when the
        driver's deferral deadline passes).
        """
        if not self.has_expressions:
            return self._root.evaluate({})
        guard = _Guard(budget)
        bindings: dict[str, Any] = {
            name: Utils.NULL_VALUE if value is None else value for name, value in variables.items()
        }
        bindings["states"] = dict(states)
        bindings["__evaluate_entry"] = guard.enter
        bindings["__evaluate_exit"] = guard.leave
        bindings["__budget"] = guard
        return self._root.evaluate(bindings)

    def __repr__(self) -> str:
        return f"JSONataTemplate({self.raw!r}, {self.field!r})"


def compile_template(raw: Any, field: str) -> JSONataTemplate:
    """Compile a field's value, whose expressions may sit anywhere inside it.

    ``field`` names the field in error causes (``Output``, ``Arguments``,
    ``Assign``, ``Choices[0]/Condition``). Raises :class:`JSONataSyntaxError`.
    """
    return _cached_template(json.dumps(raw, ensure_ascii=False, separators=(",", ":")), field)


@lru_cache(maxsize=4096)
def _cached_template(raw_json: str, field: str) -> JSONataTemplate:
    return JSONataTemplate(json.loads(raw_json), field)


# --- compiled template nodes ------------------------------------------------


class _Literal:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def evaluate(self, bindings: dict[str, Any]) -> Any:
        return copy.deepcopy(self.value)


class _Object:
    __slots__ = ("members",)

    def __init__(self, members: list[tuple[str, _Node]]) -> None:
        self.members = members

    def evaluate(self, bindings: dict[str, Any]) -> Any:
        return {key: node.evaluate(bindings) for key, node in self.members}


class _Array:
    __slots__ = ("items",)

    def __init__(self, items: list[_Node]) -> None:
        self.items = items

    def evaluate(self, bindings: dict[str, Any]) -> Any:
        return [node.evaluate(bindings) for node in self.items]


class _Expression:
    __slots__ = ("compiled", "field", "text")

    def __init__(self, text: str, field: str) -> None:
        self.text = text
        self.field = field
        self.compiled = _compile_expression(text, field)

    def evaluate(self, bindings: dict[str, Any]) -> Any:
        guard: _Guard = bindings["__budget"]
        guard.reset()
        current = _CURRENT.set(guard)
        try:
            result = self.compiled.evaluate(None, bindings)
        except _Interrupted as exc:
            if isinstance(exc.signal, BudgetExceeded) and exc.signal.which == "expression":
                what = f"threw an error during evaluation: {exc.signal.cause}"
                raise self._failure(what) from None
            raise exc.signal from None
        except BareError as exc:
            raise self._failure(f"threw an error during evaluation: {exc}") from exc
        except JException as exc:
            raise self._failure(f"threw an error during evaluation. {error_message(exc)}") from exc
        except RecursionError as exc:
            raise self._failure(f"threw an error during evaluation: {_STACK_OVERFLOW}") from exc
        except Exception as exc:  # a defect of the library: still a query failure
            raise self._failure(f"threw an error during evaluation: {exc}") from exc
        finally:
            _CURRENT.reset(current)
            guard.budget.start_expression()  # what follows is not this expression's time
        if result is None:
            raise self._failure("returned nothing (undefined).")
        try:
            return _to_json(result)
        except _NotJSON:
            raise self._failure("returned an unsupported result type.") from None

    def _failure(self, what: str) -> StatesError:
        return StatesError(
            StatesErrorName.QUERY_EVALUATION_ERROR,
            f"The JSONata expression '{self.text}' specified for the field '{self.field}' {what}",
        )


_Node = _Literal | _Object | _Array | _Expression


def _compile(raw: Any, field: str) -> _Node:
    if isinstance(raw, str) and is_expression(raw):
        return _Expression(raw[2:-2].strip(), field)
    if isinstance(raw, dict):
        members = [(key, _compile(value, f"{field}/{key}")) for key, value in raw.items()]
        if any(not isinstance(node, _Literal) for _, node in members):
            return _Object(members)
    elif isinstance(raw, list):
        items = [_compile(value, f"{field}[{index}]") for index, value in enumerate(raw)]
        if any(not isinstance(node, _Literal) for node in items):
            return _Array(items)
    return _Literal(raw)


def _compile_expression(text: str, field: str) -> Jsonata:
    try:
        compiled = _parse(text)
    except JException as exc:
        detail = error_message(exc).partition(": ")[2]
        raise JSONataSyntaxError(field, text, _INVALID, detail) from exc
    except Exception as exc:  # the parser has defects of its own
        raise JSONataSyntaxError(field, text, _INVALID, str(exc)) from exc
    names = _top_level_references(compiled.ast)
    if names:
        detail = f"Reference to '{names[0]}' at the top level is not supported."
        raise JSONataSyntaxError(field, text, _UNSUPPORTED, detail)
    return compiled


@lru_cache(maxsize=4096)
def _parse(text: str) -> Jsonata:
    compiled = Jsonata(text, jsonata_engine)
    compiled.set_output_convert_nulls(False)  # tell null from undefined (None)
    register_step_functions(compiled)
    return compiled


# --- checks and conversions -------------------------------------------------

_CHILDREN = (
    "procedure",
    "arguments",
    "lhs",
    "rhs",
    "lhs_object",
    "expression",
    "expressions",
    "expr",
    "condition",
    "then",
    "_else",
)
_PER_ITEM = ("predicate", "stages", "group", "terms")


def _top_level_references(ast: Any) -> list[str]:
    """Names an expression reads from the (absent) input document at its top level."""
    found: list[str] = []

    def visit(node: Any, top: bool) -> None:
        if isinstance(node, list | tuple):
            for item in node:
                visit(item, top)
            return
        kind = getattr(node, "type", None)
        if kind is None:
            return
        if kind == "variable" and node.value == "$":
            found.append("$$")
        elif top and ((kind == "variable" and node.value == "") or kind == "name"):
            found.append(node.value or "$")
        elif top and kind in ("wildcard", "descendant"):
            found.append(str(node.value))
        if kind == "path":
            for index, step in enumerate(node.steps or ()):
                visit(step, top and index == 0)
        elif kind == "lambda":
            visit(node.body, False)
        elif kind != "transform":
            for name in _CHILDREN:
                visit(getattr(node, name, None), top)
        for name in _PER_ITEM:
            visit(getattr(node, name, None), False)

    visit(ast, True)
    return list(dict.fromkeys(found))


class _NotJSON(Exception):
    """A result JSON cannot represent (a function, a non-finite number)."""


def _to_json(value: Any) -> Any:
    """A library result as plain JSON: ``list``/``dict`` copies, ``None`` for null.

    Whole floats become ``int``; functions are dropped from objects and become
    null in arrays (as ``JSON.stringify`` does) and are refused at the top.
    """
    if value is None or isinstance(value, Utils.NullValue):
        return None
    if isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotJSON
        return int(value) if value.is_integer() and abs(value) < 1e21 else value
    if isinstance(value, Mapping):
        return {str(key): _to_json(item) for key, item in value.items() if not _is_function(item)}
    if isinstance(value, list | tuple):
        return [None if _is_function(item) else _to_json(item) for item in value]
    raise _NotJSON


def _is_function(value: Any) -> bool:
    return not isinstance(value, _JSON_TYPES)


_JSON_TYPES = (bool, str, int, float, Mapping, list, tuple, type(None), Utils.NullValue)


class _Interrupted(BareError):
    """Carries a budget signal through the library, which rewraps foreign exceptions."""

    def __init__(self, signal: BudgetExceeded | DecisionDeferred) -> None:
        super().__init__(str(signal))
        self.signal = signal


class _Guard:
    """Per-evaluation bounds on nesting depth, steps and time, via the library's hooks.

    Every evaluation step checks the time budget, so ``$map`` over ten million
    items or a runaway recursion stops within one step of the deadline.
    """

    __slots__ = ("budget", "depth", "steps")

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.depth = 0
        self.steps = 0

    def reset(self) -> None:
        self.depth = 0
        self.steps = 0
        self.budget.start_expression()

    def enter(self, *_: Any) -> None:
        self.depth += 1
        self.steps += 1
        try:
            self.budget.check()
        except (BudgetExceeded, DecisionDeferred) as exc:
            raise _Interrupted(exc) from None
        if self.depth > MAX_DEPTH:
            raise BareError(_STACK_OVERFLOW)
        if self.steps > MAX_STEPS:
            raise BareError(_TOO_LONG)

    def leave(self, *_: Any) -> None:
        self.depth -= 1

    def tick(self) -> None:
        """A check from inside a library loop that has no evaluation step of its own."""
        try:
            self.budget.check()
        except (BudgetExceeded, DecisionDeferred) as exc:
            raise _Interrupted(exc) from None


# --- budget checks inside the library's own loops ---------------------------
#
# Some library work runs per item without an evaluation step: materialising a
# range ([1..1e7] is ten million items) and checking each item of an array
# against a function signature. Both get a budget check every _STRIDE items,
# through the guard of the expression this thread is evaluating.

_CURRENT: ContextVar[_Guard | None] = ContextVar("stepflow_jsonata_guard", default=None)
_STRIDE = 1 << 14
_original_get_symbol = Signature.get_symbol
_SYMBOLS = {str: "s", bool: "b", int: "n", float: "n", list: "a", dict: "o"}
_symbol_calls = 0


def _get_symbol(self: Any, value: Any) -> str:
    global _symbol_calls
    _symbol_calls += 1
    if not _symbol_calls % _STRIDE:
        guard = _CURRENT.get()
        if guard is not None:
            guard.tick()
    symbol = _SYMBOLS.get(type(value))  # exact types: a library subclass takes the long way
    return symbol if symbol is not None else str(_original_get_symbol(self, value))


def _range_items(self: Any) -> Iterator[int]:
    guard = _CURRENT.get()
    start, stop = int(self.a), int(self.b)
    while start < stop:
        end = min(start + _STRIDE, stop)
        yield from range(start, end)
        if guard is not None:
            guard.tick()
        start = end


Signature.get_symbol = _get_symbol
Utils.RangeList.__iter__ = _range_items
