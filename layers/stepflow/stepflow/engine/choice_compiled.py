"""JSONPath Choice rules compiled to closures, once per rule.

:func:`~stepflow.engine.choice.holds` is the general rule, read afresh on every
evaluation. A compiled condition resolves once what does not change between
evaluations: the operator's family and relation, the literal operand's type, and
how the ``Variable`` path is read (a one-key path on ``$`` reads the key directly).
Operators without a shortcut (``Timestamp*``, ``StringMatches``, the ``…Path`` forms)
compile to the general comparison itself, so there is one statement of each rule.
A comparison checks the time budget once, before its read (the general one checks
twice, both before the read).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from stepflow.asl.states.choice import And, ChoiceRule, Comparison, Condition, Not, Or
from stepflow.data.budget import Budget
from stepflow.data.jsonpath import Path, PathNotFoundError
from stepflow.data.scope import Scope
from stepflow.engine.choice import _MISSING, _RELATIONS, _TYPE_TESTS, _compare, _split
from stepflow.errors import StatesError, StatesErrorName

Test = Callable[[Scope], bool]
InputTest = Callable[[Any, Budget], bool]
"""A test of ``$`` alone: the value and the decision's budget."""
Reader = Callable[[Scope], Any]


def rule_test(rule: ChoiceRule) -> Test:
    """The compiled condition of a JSONPath top-level rule (compiled on first use, kept)."""
    test: Test | None = rule.test
    if test is None:
        test = compile_condition(rule.condition)
        object.__setattr__(rule, "test", test)  # a cache on the frozen rule, not its value
    return test


def compile_condition(rule: Condition) -> Test:
    """A closure equal to ``holds(rule, scope)`` for every scope (errors included)."""
    if isinstance(rule, Comparison):
        return _comparison(rule)
    if isinstance(rule, And):
        tests = tuple(compile_condition(r) for r in rule.rules)

        def all_hold(scope: Scope) -> bool:
            return all(test(scope) for test in tests)

        return all_hold
    if isinstance(rule, Or):
        tests = tuple(compile_condition(r) for r in rule.rules)

        def any_holds(scope: Scope) -> bool:
            return any(test(scope) for test in tests)

        return any_holds
    if isinstance(rule, Not):
        inner = compile_condition(rule.rule)
        return lambda scope: not inner(scope)
    raise TypeError(f"not a JSONPath choice rule: {rule!r}")


def _reader(path: Path) -> Reader:
    """Read ``path`` in a scope without a budget check: the value, or ``_MISSING``."""
    steps = path.steps
    if path.root == "input" and steps is not None and len(steps) == 1:
        key = steps[0]
        if isinstance(key, str):

            def read_key(scope: Scope) -> Any:
                value = scope.input
                return value.get(key, _MISSING) if isinstance(value, dict) else _MISSING

            return read_key

    def read(scope: Scope) -> Any:
        try:
            return scope.read_unchecked(path)
        except PathNotFoundError:
            return _MISSING

    return read


def _invalid_path(rule: Comparison) -> StatesError:
    return StatesError(
        StatesErrorName.RUNTIME,
        f"Invalid path '{rule.variable.text}': The choice state's condition path "
        "references an invalid value.",
    )


def _comparison(rule: Comparison) -> Test:
    op, expected = rule.operator, rule.value
    if rule.value_is_path or op == "StringMatches" or op.startswith("Timestamp"):
        return partial(_compare, rule)
    read = _reader(rule.variable)
    if op == "IsPresent":

        def is_present(scope: Scope) -> bool:
            scope.budget.check()
            return bool((read(scope) is not _MISSING) == expected)

        return is_present
    if op.startswith("Is"):
        type_test = _TYPE_TESTS[op]

        def is_type(scope: Scope) -> bool:
            scope.budget.check()
            value = read(scope)
            if value is _MISSING:
                raise _invalid_path(rule)
            return bool(type_test(value) == expected)

        return is_type
    family, relation = _split(op)
    relate = _RELATIONS[relation]
    if family == "Numeric":
        typed: tuple[type, ...] = (int, float)
        valid = isinstance(expected, typed) and not isinstance(expected, bool)
    elif family == "String":
        typed = (str,)
        valid = isinstance(expected, str)
    else:  # Boolean: Equals only
        typed = (bool,)
        valid = isinstance(expected, bool)

    steps = rule.variable.steps
    key = steps[0] if rule.variable.root == "input" and steps and len(steps) == 1 else None
    if not isinstance(key, str):
        key = None

    if key is not None:
        return _on_input(_compare_key(rule, key, valid, typed, relate, expected))

    def compare(scope: Scope) -> bool:
        scope.budget.check()
        value = read(scope)
        if value is _MISSING:
            raise _invalid_path(rule)
        if not valid or not isinstance(value, typed):
            return False
        if value.__class__ is bool and typed[0] is int:  # a bool is not a number
            return False
        return relate(value, expected)  # type: ignore[no-any-return]  # a bool for these types

    return compare


def _compare_key(
    rule: Comparison,
    key: str,
    valid: bool,
    typed: tuple[type, ...],
    relate: Callable[[Any, Any], Any],
    expected: Any,
) -> InputTest:
    """A comparison of the usual Variable, a one-key path on ``$`` (``$.i``), on ``$`` itself.

    Its checks repeat the general comparison's, inline: it runs once per Choice rule on the
    hot path, where a shared helper would cost a call.
    """

    def compare(value: Any, budget: Budget) -> bool:
        budget.check()
        value = value.get(key, _MISSING) if isinstance(value, dict) else _MISSING
        if value is _MISSING:
            raise _invalid_path(rule)
        if not valid or not isinstance(value, typed):
            return False
        if value.__class__ is bool and typed[0] is int:  # a bool is not a number
            return False
        return relate(value, expected)  # type: ignore[no-any-return]  # a bool for these types

    return compare


def _on_input(test: InputTest) -> Test:
    """``test`` as a test of a scope; ``on_input`` keeps it, for a caller without a scope."""

    def on_scope(scope: Scope) -> bool:
        return test(scope.input, scope.budget)

    on_scope.on_input = test  # type: ignore[attr-defined]
    return on_scope


def input_test(test: Test) -> InputTest | None:
    """The form of a compiled test that takes ``$`` and the budget (no scope), if it has one.

    Only a comparison that reads nothing but ``$`` has one (see :func:`_compare_key`).
    """
    return getattr(test, "on_input", None)
