"""Compiled states equal the general rules: Choice conditions, intrinsic calls, budgets."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stepflow.asl import parse
from stepflow.asl.states.choice import COMPARISON_OPERATORS, And, Comparison, Condition, Not, Or
from stepflow.data import intrinsics
from stepflow.data.budget import BudgetExceeded
from stepflow.data.intrinsic_parser import Call, parse_intrinsic
from stepflow.data.jsonpath import compile_path
from stepflow.data.scope import Scope
from stepflow.engine import choice, choice_compiled
from stepflow.errors import StatesError
from stepflow.testing import execute

SCALARS = (
    st.none()
    | st.booleans()
    | st.sampled_from([0, 1, 1.0, -1, 0.5, 2**31, -0.0, 1e20])
    | st.integers(-3, 3)
    | st.floats(-3, 3, allow_nan=False)
    | st.sampled_from(["", "a", "b", "2024-01-01T00:00:00Z", "2024-01-02T00:00:00+01:00"])
)
VALUES = SCALARS | st.lists(SCALARS, max_size=2) | st.dictionaries(st.sampled_from("ab"), SCALARS)
PATHS = st.sampled_from(["$.v", "$.w", "$.a.b", "$.l[0]", "$", "$$.Execution.Name", "$x"])


def _comparisons() -> st.SearchStrategy[Comparison]:
    literal = st.builds(
        lambda path, op, value: Comparison(compile_path(path), op, value, False),
        PATHS,
        st.sampled_from(COMPARISON_OPERATORS),
        SCALARS,
    )
    by_path = st.builds(
        lambda path, op, other: Comparison(compile_path(path), op, compile_path(other), True),
        PATHS,
        st.sampled_from([op for op in COMPARISON_OPERATORS if not op.startswith("Is")]),
        PATHS,
    )
    return literal | by_path


CONDITIONS: st.SearchStrategy[Condition] = st.recursive(
    _comparisons(),
    lambda inner: (
        st.builds(lambda rules: And(tuple(rules)), st.lists(inner, min_size=1, max_size=3))
        | st.builds(lambda rules: Or(tuple(rules)), st.lists(inner, min_size=1, max_size=3))
        | st.builds(Not, inner)
    ),
    max_leaves=4,
)

INPUTS = st.fixed_dictionaries(
    {},
    optional={
        "v": VALUES,
        "w": VALUES,
        "a": st.dictionaries(st.sampled_from(["b", "c"]), VALUES, max_size=2) | SCALARS,
        "l": st.lists(VALUES, max_size=2),
    },
)


class CountingBudget:
    """Counts checks (never runs out)."""

    def __init__(self) -> None:
        self.checks = 0

    def start_expression(self) -> None:
        """Nothing to reset."""

    def check(self) -> None:
        self.checks += 1


def _outcome(test: Any, scope: Scope) -> tuple[str, Any]:
    try:
        return "value", test(scope)
    except StatesError as exc:
        return "error", (exc.error, exc.cause)


@settings(max_examples=600, deadline=None)
@given(rule=CONDITIONS, value=INPUTS | VALUES, name=VALUES, variable=VALUES)
def test_a_compiled_condition_equals_the_general_rule(
    rule: Condition, value: Any, name: Any, variable: Any
) -> None:
    def scope() -> Scope:
        return Scope(value, {"Execution": {"Name": name}}, {"x": variable}, CountingBudget())

    general, compiled = scope(), scope()
    assert _outcome(choice_compiled.compile_condition(rule), compiled) == _outcome(
        lambda s: choice.holds(rule, s), general
    )
    # coarser, never absent: each comparison evaluated checks the budget at least once
    assert 0 < compiled.budget.checks <= general.budget.checks  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("op", "expected", "value", "holds"),
    [
        ("NumericEquals", 1, 1.0, True),
        ("NumericEquals", 1.0, 1, True),
        ("NumericEquals", 1, True, False),
        ("NumericLessThan", 2, False, False),
        ("BooleanEquals", True, 1, False),
        ("BooleanEquals", False, False, True),
        ("StringEquals", "1", 1, False),
        ("StringLessThan", "b", "a", True),
        ("IsNumeric", True, True, False),
        ("IsNumeric", True, 1.5, True),
        ("IsPresent", False, None, False),
    ],
)
def test_numeric_edges_and_booleans(op: str, expected: Any, value: Any, holds: bool) -> None:
    rule = Comparison(compile_path("$.v"), op, expected, False)
    scope = Scope({"v": value})
    assert choice_compiled.compile_condition(rule)(scope) is holds
    assert choice.holds(rule, scope) is holds


def test_a_missing_variable_fails_as_the_general_rule_does() -> None:
    rule = Comparison(compile_path("$.v"), "NumericLessThan", 3, False)
    for test in (choice_compiled.compile_condition(rule), lambda s: choice.holds(rule, s)):
        with pytest.raises(StatesError, match=r"Invalid path '\$\.v'"):
            test(Scope({"w": 1}))
        with pytest.raises(StatesError, match=r"Invalid path '\$\.v'"):
            test(Scope([1]))


def test_a_rule_is_compiled_once_per_parsed_definition(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[Condition] = []
    compile_condition = choice_compiled.compile_condition

    def counting(rule: Condition) -> Any:
        compiled.append(rule)
        return compile_condition(rule)

    monkeypatch.setattr(choice_compiled, "compile_condition", counting)
    machine = parse(
        {
            "StartAt": "Check",
            "States": {
                "Check": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.i", "NumericLessThan": 5, "Next": "Add"}],
                    "Default": "Done",
                },
                "Add": {
                    "Type": "Pass",
                    "Parameters": {"i.$": "States.MathAdd($.i, 1)"},
                    "Next": "Check",
                },
                "Done": {"Type": "Succeed"},
            },
        }
    )
    assert execute(machine, {"i": 0}).result == {"i": 5}
    assert execute(machine, {"i": 2}).result == {"i": 5}
    assert len(compiled) == 1  # 9 evaluations of the rule, one compilation


# --- intrinsics ---------------------------------------------------------------------------

TEMPLATES = st.lists(
    st.sampled_from(["{}", "a", " ", "\\{", "\\}", "\\'", "{", "}", "\\\\"]), max_size=5
).map("".join)


@settings(max_examples=400, deadline=None)
@given(template=TEMPLATES, args=st.lists(VALUES, max_size=3))
def test_a_specialized_format_equals_the_general_one(template: str, args: list[Any]) -> None:
    quoted = template.replace("'", "\\'") if "\\'" not in template else template
    text = "States.Format('" + quoted + "'" + "".join(f", $.a{i}" for i in range(len(args))) + ")"
    try:
        node = parse_intrinsic(text)
    except intrinsics.IntrinsicSyntaxError:
        return
    assert isinstance(node, Call)
    values = [node.args[0].value, *args]  # type: ignore[union-attr]

    def general() -> tuple[str, Any]:
        try:
            return "value", intrinsics._format(node.name, values, node.args)
        except intrinsics._Failure as exc:
            return "failure", exc.detail

    special = intrinsics._format_special(node.name, node.args)
    if special is not None:
        assert ("value", special(values)) == general()
    # and the whole compiled call, whichever way it went
    run = intrinsics.compile_intrinsic(text)
    scope = Scope({f"a{i}": v for i, v in enumerate(args)})
    kind, expected = general()
    if kind == "value":
        assert run(scope) == expected
    else:
        with pytest.raises(StatesError) as caught:
            run(scope)
        assert caught.value.cause == f"The function '{text}' had the following error: {expected}"


@settings(max_examples=300, deadline=None)
@given(value=INPUTS | VALUES, path=st.sampled_from(["$.v", "$.a.b", "$.l[0]", "$.l[-1]"]))
def test_a_reference_argument_reads_as_the_scope_does(value: Any, path: str) -> None:
    run = intrinsics.compile_intrinsic(f"States.Array({path})")
    scope = Scope(value)
    try:
        expected = scope.read(compile_path(path))
    except LookupError:
        with pytest.raises(StatesError, match="could not be found in the input"):
            run(scope)
        return
    assert run(scope) == [expected]


def test_a_wrong_argument_count_is_reported_after_a_missing_path() -> None:
    with pytest.raises(StatesError, match=r"field '\$\.nope' could not be found"):
        intrinsics.compile_intrinsic("States.MathAdd($.nope)")(Scope({}))
    with pytest.raises(StatesError, match=r"Invalid arguments in States\.MathAdd"):
        intrinsics.compile_intrinsic("States.MathAdd($.i)")(Scope({"i": 1}))


# --- budgets: coarser checks still stop a runaway evaluation ---------------------------------


class RunningOut(CountingBudget):
    """Runs out after ``limit`` checks."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def check(self) -> None:
        super().check()
        if self.checks > self.limit:
            raise BudgetExceeded("expression", 1)


def test_every_intrinsic_call_checks_the_budget() -> None:
    from stepflow.data.template import Template

    template = Template({f"k{i}.$": "States.MathAdd($.i, 1)" for i in range(50)})
    budget = CountingBudget()
    template.evaluate(Scope({"i": 1}, budget=budget))
    assert budget.checks == 50  # one per call: its reads are constant-cost reference paths
    with pytest.raises(BudgetExceeded):
        template.evaluate(Scope({"i": 1}, budget=RunningOut(10)))


EDGE_INTEGERS = st.sampled_from([-(2**31), 2**31 - 1, -(2**31) - 1, 2**31, 0, 1, -1])
ADDENDS = EDGE_INTEGERS | st.integers(-(2**33), 2**33) | st.floats(allow_nan=False) | SCALARS


@settings(max_examples=400, deadline=None)
@given(first=ADDENDS, second=EDGE_INTEGERS | st.integers(-5, 5) | st.sampled_from([1.5, True]))
def test_a_specialized_math_add_equals_the_general_one(first: Any, second: Any) -> None:
    node = parse_intrinsic(f"States.MathAdd($.a, {json.dumps(second)})")
    assert isinstance(node, Call)
    args = [first, second]

    def outcome(add: Any) -> tuple[str, Any]:
        try:
            return "value", add(args)
        except intrinsics._Failure as exc:
            return "failure", exc.detail

    general = outcome(lambda a: intrinsics._math_add(node.name, a, node.args))
    special = intrinsics._math_add_special(node.name, node.args)
    if special is None:
        assert type(second) is not int or not -(2**31) <= second <= 2**31 - 1
    else:
        assert outcome(special) == general


@settings(max_examples=200, deadline=None)
@given(
    every=st.sampled_from([1, 3, 16]),
    calls=st.lists(st.sampled_from(["state", "expression", "check"]), max_size=60),
    ticks=st.lists(st.floats(0, 0.3), min_size=1, max_size=8),
)
def test_start_state_is_start_expression_then_check(
    every: int, calls: list[str], ticks: list[float]
) -> None:
    from stepflow.data.budget import ClockBudget, DecisionDeferred

    def run(fused: bool) -> list[Any]:
        reads: list[Any] = []
        now = [0.0]

        def clock() -> float:  # moves on by the next tick at each read
            now[0] += ticks[len(reads) % len(ticks)]
            reads.append("read")
            return now[0]

        budget = ClockBudget(
            clock, expression_seconds=1.0, decision_seconds=5.0, defer_seconds=4.0, every=every
        )
        for call in calls:
            try:
                if call == "state" and fused:
                    budget.start_state()
                elif call == "state":
                    budget.start_expression()
                    budget.check()
                elif call == "expression":
                    budget.start_expression()
                else:
                    budget.check()
                reads.append("ok")
            except (BudgetExceeded, DecisionDeferred) as exc:
                reads.append(type(exc).__name__ + str(getattr(exc, "which", "")))
        return reads

    assert run(True) == run(False)


KEYED_CALLS = st.sampled_from(
    [
        "States.MathAdd($.k, 1)",
        "States.MathAdd($.k, -2147483648)",
        "States.Format('iteration {}', $.k)",
        "States.Format('{}', $.k)",
        "States.Format('{} and more', $.missing)",
    ]
)


@settings(max_examples=400, deadline=None)
@given(text=KEYED_CALLS, value=INPUTS | VALUES | st.fixed_dictionaries({"k": VALUES}))
def test_a_call_of_a_literal_and_a_key_equals_the_general_call(text: str, value: Any) -> None:
    def outcome() -> tuple[Any, ...]:
        budget = CountingBudget()
        try:
            result: tuple[Any, ...] = (
                "value",
                intrinsics.compile_intrinsic.__wrapped__(text)(
                    Scope(value, budget=budget)
                ),  # afresh
            )
        except StatesError as exc:
            result = ("error", exc.error, exc.cause)
        return (*result, budget.checks)

    keyed = outcome()
    with pytest.MonkeyPatch.context() as patched:  # the general call
        patched.setattr(intrinsics, "_literal_and_key", lambda *_: None)
        assert outcome() == keyed


class RecordingBudget(CountingBudget):
    """Records its calls in order."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def start_expression(self) -> None:
        self.calls.append("start")

    def check(self) -> None:
        super().check()
        self.calls.append("check")


TEMPLATE_FIELDS = st.dictionaries(
    st.sampled_from(["a", "b", "c", "d"]),
    st.sampled_from(
        [
            ("v.$", "$.v"),
            ("v.$", "$.a.b"),
            ("v.$", "$.l[0]"),
            ("v.$", "$"),
            ("v.$", "States.MathAdd($.v, 1)"),
            ("v.$", "States.Format('at {}', $.w)"),
            ("v", {"k": [1, 2]}),
            ("v", "text"),
        ]
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=400, deadline=None)
@given(fields=TEMPLATE_FIELDS, value=INPUTS | VALUES)
def test_a_template_of_input_reads_evaluates_without_a_scope_as_with_one(
    fields: dict[str, tuple[str, Any]], value: Any
) -> None:
    from stepflow.data.template import Template

    raw = {key + suffix[1:]: item for key, (suffix, item) in fields.items()}
    template = Template(raw)
    if not any(key.endswith(".$") for key in raw):
        assert template.input_form is None  # a constant: nothing to read
        return
    assert template.input_form is not None  # every field reads $ alone

    def outcome(run: Any) -> tuple[Any, ...]:
        budget = RecordingBudget()
        try:
            result: tuple[Any, ...] = ("value", run(budget))
        except StatesError as exc:
            result = ("error", exc.error, exc.cause)
        return (*result, budget.calls)

    without = outcome(lambda budget: template.input_form(value, budget))  # type: ignore[misc]
    through = outcome(lambda budget: template.evaluate(Scope(value, budget=budget)))
    general = Template(raw)
    general._input_parts = None  # the scope's own path: each field's evaluator
    assert (
        without == through == outcome(lambda budget: general.evaluate(Scope(value, budget=budget)))
    )


def test_a_template_reading_anything_else_has_no_input_form() -> None:
    from stepflow.data.template import Template

    for raw in (
        {"v.$": "$$.State.Name"},
        {"v.$": "$var"},
        {"v.$": "States.ArrayLength($.a)", "w.$": "$.w"},
        {"v": {"w.$": "$.w"}},
        {"v.$": "States.MathAdd($.v, $.w)"},
        [{"v.$": "$.v"}],
        {"v": 1},
    ):
        assert Template(raw).input_form is None, raw
