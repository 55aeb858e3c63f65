"""Plain JSONata expressions read without the library, with the library's results.

Most expressions in a JSONata workflow are a path (``$states.input.order.id``,
``$states.context.Execution.Id``, ``$total``), or one operator between a path and a
literal (``$states.input.n + 1``, ``$states.input.status = 'DONE'``). Through
jsonata-python each costs 15-20 µs (an environment, a frame and a budget hook per
step); read directly, about 1 µs.

:func:`compile_fast` recognises, in an expression's parsed tree, only these shapes:

* a variable (``$name``) followed by plain field names (no predicate, index, stage,
  wildcard, ``[]``, focus or context binding);
* ``+``, ``-`` and ``*`` between two such paths or number literals;
* ``<``, ``<=``, ``>``, ``>=``, ``=`` and ``!=`` between two such paths or number,
  string or boolean literals;
* ``&`` between such paths, literals, ``$string(...)`` of one, and other ``&``
  (``'order ' & $string($states.input.id) & ' done'``): strings, and integers of up
  to 15 digits, which the library prints as they are;
* ``and`` and ``or`` between any of these whose values are booleans
  (``$states.input.n > 1 and $states.input.s = 'DONE'``), the right side read only when
  the left does not settle it, as the library does;
* chains (``&``, ``and``/``or``) of at most 32 terms.

The reader it returns gives the value, or :data:`MISS` for anything it does not resolve
the library's way for certain: a missing key, a step into anything but an object (the
library maps a path over an array), an operand of another type, a number out of range.
The caller then evaluates the expression through the library, which gives the result,
the error or the undefined as always: there is one implementation of everything but
these reads, and each of them is checked against the library by property tests
(``tests/unit/test_jsonata_fast.py``). Numbers follow the library: arithmetic on
doubles, a whole result as an ``int``; ``=`` and ``!=`` compare numbers as doubles;
``<`` and the others compare two numbers of one type as they are, and an ``int`` with
a ``float`` as doubles.

:func:`reads_context` tells the engine whether an expression can read
``$states.context`` at all: when no expression of a field can, the context object is
not built for it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from typing import Any, Final

MISS: Final[Any] = object()
"""What a reader returns for a case it leaves to the library."""

Reader = Callable[[Mapping[str, Any], Mapping[str, Any]], Any]
"""``reader(states, variables)``: the expression's value (``None`` for null) or :data:`MISS`."""

# attributes every parsed node carries, whatever its kind
_ALWAYS = frozenset({"_outer_instance", "id", "value", "type", "bp", "lbp", "position"})
_NUMBERS = (int, float)  # exact types: a bool is neither here
_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_EQUALITY = frozenset({"=", "!="})
_PRINTED = 10**15  # an integer under this many is printed by the library as str() does
_MOST_TERMS = 32  # a longer chain of & (or of and/or) is left to the library
_LOGIC = {"and": False, "or": True}  # the lhs value that settles each without its rhs


def compile_fast(ast: Any) -> Reader | None:
    """A direct reader for ``ast`` if it is one of the plain shapes, else ``None``."""
    return _expression(ast, [0])


def _expression(ast: Any, terms: list[int]) -> Reader | None:
    if _kind(ast) == "binary" and _bare(ast, "lhs", "rhs") and ast.value in _LOGIC:
        return _logic(ast, terms)
    if _kind(ast) == "binary" and _bare(ast, "lhs", "rhs") and ast.value == "&":
        return _concatenation(ast, [0])
    if _kind(ast) == "function":
        return _string_call(ast)
    if _kind(ast) == "binary" and _bare(ast, "lhs", "rhs"):
        op = ast.value
        left, right = _operand(ast.lhs), _operand(ast.rhs)
        if left is None or right is None:
            return None
        if op in _ARITHMETIC:
            return _arithmetic(_ARITHMETIC[op], left, right)
        if op in _ORDER:
            return _order(_ORDER[op], left, right)
        if op in _EQUALITY:
            return _equality(op == "=", left, right)
        return None
    return _path(ast)


def _kind(node: Any) -> str | None:
    kind = getattr(node, "type", None)
    return kind if isinstance(kind, str) else None


def _bare(node: Any, *used: str) -> bool:
    """Whether ``node`` sets nothing but its kind, value and the attributes in ``used``."""
    try:
        attributes = vars(node)
    except TypeError:
        return False
    return getattr(node, "level", 0) == 0 and all(
        value is None or value is False or name in _ALWAYS or name in used or name == "level"
        for name, value in attributes.items()
    )


def _operand(node: Any) -> Reader | None:
    kind = _kind(node)
    if kind == "number" and _bare(node) and type(node.value) in _NUMBERS:
        return _constant(node.value)
    if kind == "string" and _bare(node) and type(node.value) is str:
        return _constant(node.value)
    if kind == "value" and _bare(node) and type(node.value) is bool:
        return _constant(node.value)
    return _path(node)


def _constant(value: Any) -> Reader:
    def read(states: Mapping[str, Any], variables: Mapping[str, Any]) -> Any:
        return value

    return read


def _variable_name(node: Any) -> str | None:
    if _kind(node) != "variable" or not _bare(node):
        return None
    name = node.value
    # "" is the context item, "$" the root; "__..." names are the evaluator's own bindings
    if not isinstance(name, str) or not name or name == "$" or name.startswith("__"):
        return None
    return name


def _path(node: Any) -> Reader | None:
    """``$name.a.b``: a variable and plain field names (``None`` for anything else)."""
    if _kind(node) == "variable":
        name, keys = _variable_name(node), ()
    elif _kind(node) == "path" and _bare(node, "steps") and isinstance(node.steps, list):
        steps = node.steps
        plain = (_kind(s) == "name" and _bare(s) and isinstance(s.value, str) for s in steps[1:])
        if not steps or not all(plain):
            return None
        name, keys = _variable_name(steps[0]), tuple(s.value for s in steps[1:])
    else:
        return None
    if name is None:
        return None
    return _reader(name, keys)


def _reader(name: str, keys: tuple[str, ...]) -> Reader:
    def read(states: Mapping[str, Any], variables: Mapping[str, Any]) -> Any:
        value = states if name == "states" else variables.get(name, MISS)
        for key in keys:
            if type(value) is not dict:  # an array is mapped over; a scalar has no field
                return MISS
            value = value.get(key, MISS)
            if value is MISS:
                return MISS
        return value

    return read


def _arithmetic(op: Callable[[float, float], float], left: Reader, right: Reader) -> Reader:
    def read(states: Mapping[str, Any], variables: Mapping[str, Any]) -> Any:
        a, b = left(states, variables), right(states, variables)
        if type(a) not in _NUMBERS or type(b) not in _NUMBERS:
            return MISS  # MISS, null, a bool, a string...: the library's error or undefined
        try:
            result = op(float(a), float(b))
        except OverflowError:
            return MISS
        if not math.isfinite(result):
            return MISS
        return int(result) if result.is_integer() else result

    return read


def _order(op: Callable[[Any, Any], bool], left: Reader, right: Reader) -> Reader:
    def read(states: Mapping[str, Any], variables: Mapping[str, Any]) -> Any:
        a, b = left(states, variables), right(states, variables)
        kind = type(a)
        if kind is type(b) and (kind is int or kind is float or kind is str):
            return op(a, b)
        if kind in _NUMBERS and type(b) in _NUMBERS:
            try:
                return op(float(a), float(b))
            except OverflowError:
                return MISS
        return MISS

    return read


def _equality(equal: bool, left: Reader, right: Reader) -> Reader:
    def read(states: Mapping[str, Any], variables: Mapping[str, Any]) -> Any:
        a, b = left(states, variables), right(states, variables)
        if type(a) in _NUMBERS and type(b) in _NUMBERS:
            try:
                same = float(a) == float(b)
            except OverflowError:
                return MISS
        elif type(a) is type(b) and (type(a) is str or type(a) is bool):
            same = a == b
        else:
            return MISS
        return same if equal else not same

    return read


def _text(value: Any) -> Any:
    """``value`` as the library prints it for ``&`` and ``$string``, or :data:`MISS`."""
    if type(value) is str:
        return value
    if type(value) is int and -_PRINTED < value < _PRINTED:
        return str(value)
    return MISS  # a float, a bool, null, an object, an array, undefined


def _string_call(node: Any) -> Reader | None:
    """``$string(x)`` of a path or a literal."""
    if _kind(node) != "function" or node.value != "(" or not _bare(node, "procedure", "arguments"):
        return None
    procedure, arguments = node.procedure, node.arguments
    if _kind(procedure) != "variable" or not _bare(procedure) or procedure.value != "string":
        return None
    if not isinstance(arguments, list) or len(arguments) != 1:
        return None
    argument = _operand(arguments[0])
    if argument is None:
        return None

    def read(states: Mapping[str, Any], variables: Mapping[str, Any]) -> Any:
        if "string" in variables:  # a variable named string hides the function
            return MISS
        return _text(argument(states, variables))

    return read


def _concatenation(node: Any, terms: list[int]) -> Reader | None:
    """``a & b``, where each side is a path, a literal, ``$string(...)`` or another ``&``."""
    if _too_long(node, ("&",)):
        return None
    sides: list[Reader] = []
    for side in (node.lhs, node.rhs):
        if not _chained(side, ("&",)):
            terms[0] += 1  # a term of the chain (a nested & counts its own)
        if terms[0] > _MOST_TERMS:
            return None
        if _kind(side) == "binary" and side.value == "&" and _bare(side, "lhs", "rhs"):
            reader = _concatenation(side, terms)
        elif _kind(side) == "function":
            reader = _string_call(side)
        else:
            reader = _operand(side)
        if reader is None:
            return None
        sides.append(reader)
    left, right = sides

    def read(states: Mapping[str, Any], variables: Mapping[str, Any]) -> Any:
        a = _text(left(states, variables))
        if a is MISS:
            return MISS
        b = _text(right(states, variables))
        return MISS if b is MISS else a + b

    return read


def _logic(node: Any, terms: list[int]) -> Reader | None:
    """``a and b``, ``a or b``: booleans only (the library's truthiness of others is its own)."""
    if _too_long(node, tuple(_LOGIC)):
        return None
    settles: bool = _LOGIC[node.value]
    sides: list[Reader] = []
    for side in (node.lhs, node.rhs):
        if not _chained(side, tuple(_LOGIC)):
            terms[0] += 1  # a term of the chain (a nested and/or counts its own)
        if terms[0] > _MOST_TERMS or (side is node.lhs and not _may_be_boolean(side)):
            return None  # a right side that cannot be a boolean still reads when the left settles
        reader = _expression(side, terms)
        if reader is None:
            return None
        sides.append(reader)
    left, right = sides

    def read(states: Mapping[str, Any], variables: Mapping[str, Any]) -> Any:
        a = left(states, variables)
        if type(a) is not bool:
            return MISS
        if a is settles:
            return a
        b = right(states, variables)
        return b if type(b) is bool else MISS

    return read


def _too_long(node: Any, operators: tuple[str, ...]) -> bool:
    """Whether the chain under ``node`` has more terms than the cap (counted without recursion).

    Counted before any side is compiled: a chain of thousands of terms (which the library
    parses) would otherwise be walked to its bottom before the cap could stop it (review 23).
    """
    pending, count = [node], 0
    while pending:
        item = pending.pop()
        if _chained(item, operators):
            pending += (item.lhs, item.rhs)
        else:
            count += 1
            if count > _MOST_TERMS:
                return True
    return False


def _may_be_boolean(node: Any) -> bool:
    """Whether the left side of ``and``/``or`` can be a boolean read directly.

    Not ``+ - *``, ``&`` or ``$string(...)``: their direct reads never are, so the whole
    expression would always miss (review 23). A right side is not refused: the left may
    settle the expression without it (review 26).
    """
    if _kind(node) == "binary":
        return node.value in _LOGIC or node.value in _ORDER or node.value in _EQUALITY
    return _kind(node) != "function"


def _chained(node: Any, operators: tuple[str, ...]) -> bool:
    """Whether ``node`` is itself one of ``operators`` (its terms are counted inside it)."""
    return _kind(node) == "binary" and node.value in operators


def reads_context(ast: Any) -> bool:
    """Whether an expression may read ``$states.context`` (conservatively: yes if unsure).

    No only when every use of ``$states`` is the head of a path whose next step is a plain
    field name other than ``context`` (``$states.input.a``, ``$states.result``): then the
    context object need not be built for it.
    """
    seen: set[int] = set()
    stack: list[Any] = [ast]
    while stack:
        node = stack.pop()
        if isinstance(node, list | tuple):
            stack.extend(node)
            continue
        if id(node) in seen or not hasattr(node, "__dict__"):
            continue  # a value; a node without a kind (a group's object) is walked too
        seen.add(id(node))
        attributes = {k: v for k, v in vars(node).items() if k != "_outer_instance"}
        if _kind(node) == "path" and isinstance(node.steps, list) and node.steps:
            head, rest = node.steps[0], node.steps[1:]
            if _kind(head) == "variable" and head.value == "states":
                if not _bare(head):
                    return True  # a predicate, group, focus or index sees $states whole
                after = rest[0] if rest else None
                if after is None or _kind(after) != "name" or not _bare(after):
                    return True
                if after.value == "context":
                    return True
                seen.add(id(head))  # this use of $states is settled; walk the rest
        elif _kind(node) == "variable" and node.value == "states":
            return True
        stack.extend(v for v in attributes.values() if v is not None and not isinstance(v, str))
    return False
