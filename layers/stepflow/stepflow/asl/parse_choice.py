"""Parsing the ``Choices`` of a Choice state: JSONPath rule trees and JSONata conditions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from stepflow.asl.parse_context import Context, is_jsonata, is_number, pointer
from stepflow.asl.states.base import MISSING, ROOT_PATH, QueryLanguage
from stepflow.asl.states.choice import (
    COMPARISON_OPERATORS,
    And,
    ChoiceRule,
    Comparison,
    Condition,
    JSONataCondition,
    Not,
    Or,
)

_WITH_PATH_FORM = tuple(
    op for op in COMPARISON_OPERATORS if not op.startswith("Is") and op != "StringMatches"
)
OPERATORS: dict[str, tuple[str, bool]] = {
    **{op: (op, False) for op in COMPARISON_OPERATORS},
    **{f"{op}Path": (op, True) for op in _WITH_PATH_FORM},
}
"""Every operator field name: its base operator and whether its value is a path."""

_COMBINATORS = ("And", "Or", "Not")
_JSONPATH_RULE = frozenset({"Variable", "Comment", *_COMBINATORS, *OPERATORS})
_JSONATA_RULE = frozenset({"Condition"})
_TOP_LEVEL = {
    "JSONPath": frozenset({"Next", "Assign"}),
    "JSONata": frozenset({"Next", "Assign", "Output", "Comment"}),
}
_EVERY_FIELD = _JSONPATH_RULE | _JSONATA_RULE | {"Next", "Assign", "Output"}


def parse_choices(
    ctx: Context, value: Any, loc: str, language: QueryLanguage
) -> tuple[ChoiceRule, ...]:
    """The top-level rules of a ``Choices`` array at ``loc``."""
    if not isinstance(value, list) or not value:
        ctx.error(loc, "The value of 'Choices' must be a non-empty array of rules")
        return ()
    rules = []
    for i, raw in enumerate(value):
        rule = _top_rule(ctx, raw, pointer(loc, i), language)
        if rule is not None:
            rules.append(rule)
    return tuple(rules)


def _top_rule(ctx: Context, raw: Any, loc: str, language: QueryLanguage) -> ChoiceRule | None:
    rule = ctx.obj(raw, loc, "Choices")
    if rule is None:
        return None
    next_state = ""
    if "Next" not in rule:
        ctx.error(loc, "A Choice rule requires the field 'Next'")
    else:
        next_state = ctx.string(rule["Next"], pointer(loc, "Next"), "Next") or ""
    assign = None
    if "Assign" in rule:
        assign = ctx.assign(rule["Assign"], pointer(loc, "Assign"), language)
    output = MISSING
    if "Output" in rule and language == "JSONata":
        output = rule["Output"]
        ctx.jsonata(output, pointer(loc, "Output"), "Output")
    if language == "JSONata":
        condition = _jsonata_condition(ctx, rule, loc)
    else:
        condition = _condition(ctx, rule, loc, top=True)
    return ChoiceRule(condition, next_state, assign, output)


def _jsonata_condition(ctx: Context, rule: Mapping[str, Any], loc: str) -> Condition:
    _check_fields(ctx, rule, loc, _JSONATA_RULE | _TOP_LEVEL["JSONata"], "JSONata")
    if "Condition" not in rule:
        ctx.error(loc, "A JSONata Choice rule requires the field 'Condition'")
        return JSONataCondition("{% false %}")
    value = rule["Condition"]
    where = pointer(loc, "Condition")
    if isinstance(value, bool):  # a constant condition
        return JSONataCondition("{% true %}" if value else "{% false %}")
    if not is_jsonata(value):
        ctx.error(where, "The value of 'Condition' must be a JSONata expression '{% ... %}'")
        return JSONataCondition("{% false %}")
    ctx.jsonata(value, where, "Condition")
    return JSONataCondition(value)


def _condition(ctx: Context, rule: Mapping[str, Any], loc: str, *, top: bool) -> Condition:
    allowed = _JSONPATH_RULE | (_TOP_LEVEL["JSONPath"] if top else frozenset())
    _check_fields(ctx, rule, loc, allowed, "JSONPath", nested=not top)
    kinds = [key for key in rule if key in _COMBINATORS or key in OPERATORS]
    if len(kinds) != 1:
        found = ", ".join(kinds) if kinds else "none"
        ctx.error(
            loc,
            "A Choice rule must have exactly one of 'And', 'Or', 'Not' or a comparison "
            f"operator (found: {found})",
        )
        return And(())
    kind = kinds[0]
    if kind in _COMBINATORS:
        if "Variable" in rule:
            ctx.unsupported(loc, "Variable", f" with '{kind}'")
        return _COMBINATOR_PARSERS[kind](ctx, rule[kind], pointer(loc, kind))
    return _comparison(ctx, rule, loc, kind)


def _check_fields(
    ctx: Context,
    rule: Mapping[str, Any],
    loc: str,
    allowed: frozenset[str],
    language: QueryLanguage,
    *,
    nested: bool = False,
) -> None:
    for key in rule:
        if key in allowed:
            continue
        if nested and key in _TOP_LEVEL["JSONPath"]:
            ctx.unsupported(loc, key, " in a nested Choice rule")
        elif key in _EVERY_FIELD:
            ctx.wrong_language(loc, key, language)
        else:
            ctx.unsupported(loc, key)


def _nested(ctx: Context, raw: Any, loc: str, name: str) -> Condition:
    rule = ctx.obj(raw, loc, name)
    if rule is None:
        return And(())
    return _condition(ctx, rule, loc, top=False)


def _rule_list(ctx: Context, value: Any, loc: str, name: str) -> tuple[Condition, ...]:
    if not isinstance(value, list) or not value:
        ctx.error(loc, f"The value of '{name}' must be a non-empty array of rules")
        return ()
    return tuple(_nested(ctx, raw, pointer(loc, i), name) for i, raw in enumerate(value))


def _and(ctx: Context, value: Any, loc: str) -> Condition:
    return And(_rule_list(ctx, value, loc, "And"))


def _or(ctx: Context, value: Any, loc: str) -> Condition:
    return Or(_rule_list(ctx, value, loc, "Or"))


def _not(ctx: Context, value: Any, loc: str) -> Condition:
    return Not(_nested(ctx, value, loc, "Not"))


_COMBINATOR_PARSERS: dict[str, Callable[[Context, Any, str], Condition]] = {
    "And": _and,
    "Or": _or,
    "Not": _not,
}


def _comparison(ctx: Context, rule: Mapping[str, Any], loc: str, key: str) -> Condition:
    operator, value_is_path = OPERATORS[key]
    variable = ROOT_PATH
    if "Variable" not in rule:
        ctx.error(loc, f"A comparison with '{key}' requires the field 'Variable'")
    else:
        variable = ctx.path(rule["Variable"], pointer(loc, "Variable"), "Variable") or ROOT_PATH
    value = rule[key]
    where = pointer(loc, key)
    if value_is_path:
        return Comparison(variable, operator, ctx.path(value, where, key), True)
    expected, check = _OPERAND_TYPES[_family(operator)]
    if not check(value):
        ctx.error(where, f"The value of '{key}' must be {expected}")
    return Comparison(variable, operator, value, False)


def _family(operator: str) -> str:
    if operator.startswith("Is"):
        return "Is"
    return next(f for f in ("Boolean", "Numeric", "String", "Timestamp") if operator.startswith(f))


_OPERAND_TYPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "Is": ("a boolean", lambda v: isinstance(v, bool)),
    "Boolean": ("a boolean", lambda v: isinstance(v, bool)),
    "Numeric": ("a number", is_number),
    "String": ("a string", lambda v: isinstance(v, str)),
    "Timestamp": ("a timestamp string", lambda v: isinstance(v, str)),
}
