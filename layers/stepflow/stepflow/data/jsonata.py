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

import json
import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jsonata.jsonata as _library
from jsonata import JException, Jsonata
from jsonata.utils import Utils

from stepflow.data.budget import UNLIMITED, Budget, BudgetExceeded
from stepflow.data.jsonata_fast import MISS, Reader, compile_fast, reads_context
from stepflow.data.jsonata_functions import BareError, error_message, register_step_functions
from stepflow.data.jsonata_guard import CURRENT, STACK_OVERFLOW, Guard, Interrupted
from stepflow.data.regex import jsonata_engine
from stepflow.errors import StatesError, StatesErrorName

# the library prints debugging lines on some error paths; keep evaluation silent
_library.print = lambda *args, **kwargs: None

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
    expression when the whole value is one JSONata string. ``reads_context`` is
    false when no expression can read ``$states.context`` (the caller may then
    leave it out of ``$states``; see :func:`~stepflow.data.jsonata_fast.reads_context`).
    """

    __slots__ = ("_root", "expression", "field", "has_expressions", "raw", "reads_context")

    def __init__(self, raw: Any, field: str) -> None:
        self.raw = raw
        self.field = field
        self._root = _compile(raw, field)
        self.has_expressions = not isinstance(self._root, _Literal)
        self.expression = self._root.text if isinstance(self._root, _Expression) else None
        self.reads_context = _reads_context(self._root)

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
            return self._root.evaluate(_NO_ENVIRONMENT)
        return self._root.evaluate(_Environment(states, variables, budget))

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

    def evaluate(self, env: _Environment) -> Any:
        value = self.value
        if type(value) is dict or type(value) is list:
            return _json_copy(value)
        return value  # a string, a number, a boolean, null: nothing to share


def _json_copy(value: Any) -> Any:
    """A copy of a JSON value (what ``copy.deepcopy`` gives one, about five times sooner)."""
    if type(value) is dict:
        return {key: _json_copy(item) for key, item in value.items()}
    if type(value) is list:
        return [_json_copy(item) for item in value]
    return value


class _Object:
    __slots__ = ("members",)

    def __init__(self, members: list[tuple[str, _Node]]) -> None:
        self.members = members

    def evaluate(self, env: _Environment) -> Any:
        return {key: node.evaluate(env) for key, node in self.members}


class _Array:
    __slots__ = ("items",)

    def __init__(self, items: list[_Node]) -> None:
        self.items = items

    def evaluate(self, env: _Environment) -> Any:
        return [node.evaluate(env) for node in self.items]


class _Environment:
    """What one evaluation of a template sees; the library's bindings are built on first use."""

    __slots__ = ("_bindings", "budget", "states", "variables")

    def __init__(
        self, states: Mapping[str, Any], variables: Mapping[str, Any], budget: Budget
    ) -> None:
        self.states = states
        self.variables = variables
        self.budget = budget
        self._bindings: dict[str, Any] | None = None

    def bindings(self) -> dict[str, Any]:
        """The library's bindings: the variables (null as its null), ``states`` and the guard."""
        if self._bindings is None:
            guard = Guard(self.budget)
            bindings: dict[str, Any] = {
                name: Utils.NULL_VALUE if value is None else value
                for name, value in self.variables.items()
            }
            bindings["states"] = dict(self.states)
            bindings["__evaluate_entry"] = guard.enter
            bindings["__evaluate_exit"] = guard.leave
            bindings["__budget"] = guard
            self._bindings = bindings
        return self._bindings


_NO_ENVIRONMENT = _Environment({}, {}, UNLIMITED)


class _Expression:
    __slots__ = ("compiled", "fast", "field", "text")

    def __init__(self, text: str, field: str) -> None:
        self.text = text
        self.field = field
        self.compiled = _compile_expression(text, field)
        self.fast = compile_fast(self.compiled.ast)

    def evaluate(self, env: _Environment) -> Any:
        fast = self.fast
        if fast is not None:
            value = self._read(env, fast)
            if value is not MISS:
                return value
        bindings = env.bindings()
        guard: Guard = bindings["__budget"]
        guard.reset()
        current = CURRENT.set(guard)
        try:
            result = self.compiled.evaluate(None, bindings)
        except Interrupted as exc:
            if isinstance(exc.signal, BudgetExceeded) and exc.signal.which == "expression":
                what = f"threw an error during evaluation: {exc.signal.cause}"
                raise self._failure(what) from None
            raise exc.signal from None
        except BareError as exc:
            raise self._failure(f"threw an error during evaluation: {exc}") from exc
        except JException as exc:
            raise self._failure(f"threw an error during evaluation. {error_message(exc)}") from exc
        except RecursionError as exc:
            raise self._failure(f"threw an error during evaluation: {STACK_OVERFLOW}") from exc
        except Exception as exc:  # a defect of the library: still a query failure
            raise self._failure(f"threw an error during evaluation: {exc}") from exc
        finally:
            CURRENT.reset(current)
            guard.budget.start_expression()  # what follows is not this expression's time
        if result is None:
            raise self._failure("returned nothing (undefined).")
        try:
            return _to_json(result)
        except _NotJSON:
            raise self._failure("returned an unsupported result type.") from None

    def _read(self, env: _Environment, fast: Reader) -> Any:
        """The plain expression's value read directly (:mod:`~stepflow.data.jsonata_fast`).

        It starts an expression and checks the budget once, as the library's first step
        does (the same signals, not as many checks: a fake budget that runs out after N
        checks runs out later here); :data:`MISS` leaves the expression to the library,
        which starts it again.
        """
        budget = env.budget
        budget.start_expression()
        try:
            budget.check()
            value = fast(env.states, env.variables)
        except BudgetExceeded as exc:
            if exc.which == "expression":
                raise self._failure(f"threw an error during evaluation: {exc.cause}") from None
            raise
        finally:
            budget.start_expression()  # what follows is not this expression's time
        if value is MISS:
            return MISS
        try:
            return _to_json(value)
        except _NotJSON:
            return MISS

    def _failure(self, what: str) -> StatesError:
        return StatesError(
            StatesErrorName.QUERY_EVALUATION_ERROR,
            f"The JSONata expression '{self.text}' specified for the field '{self.field}' {what}",
        )


_Node = _Literal | _Object | _Array | _Expression


def _reads_context(node: _Node) -> bool:
    if isinstance(node, _Expression):
        return reads_context(node.compiled.ast)
    if isinstance(node, _Object):
        return any(_reads_context(child) for _, child in node.members)
    if isinstance(node, _Array):
        return any(_reads_context(child) for child in node.items)
    return False


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
