"""Plain JSONata reads (``stepflow.data.jsonata_fast``) give the library's outcome, always.

Each property evaluates one expression twice on the same ``$states`` and variables:
through the template (the direct read where it applies) and through jsonata-python
alone (the expression's direct reader removed), and compares the outcomes: the value,
or the error and its cause. The inputs are the hostile ones: missing keys, arrays and
scalars in the middle of a path, null, booleans beside numbers, integers past 2**53
and 2**1024, floats, negative zero, strings beside numbers, non-ASCII keys.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stepflow.data import jsonata
from stepflow.data.budget import BudgetExceeded, ClockBudget, DecisionDeferred
from stepflow.data.jsonata_fast import MISS, compile_fast
from stepflow.errors import StatesError

KEYS = ["a", "b", "n", "é", "a b"]
OPERATORS = ["+", "-", "*", "<", "<=", ">", ">=", "=", "!=", "&"]
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -0.0, 2**53, 2**53 + 1, 2**1100, 1e21, 1e300, 0.1, 2.0, -3.5]),
    st.floats(allow_nan=False, allow_infinity=False),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=4))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=12,
)


def _name(key: str) -> str:
    return f"`{key}`" if not key.isidentifier() else key


@st.composite
def paths(draw: st.DrawFn) -> str:
    root = draw(st.sampled_from(["$states.input", "$states.context", "$states", "$v", "$w"]))
    keys = draw(st.lists(st.sampled_from(KEYS), max_size=3))
    return ".".join([root, *map(_name, keys)])


LITERALS = st.one_of(
    NUMBERS.filter(lambda n: isinstance(n, int) and abs(n) < 2**53).map(str),
    st.sampled_from(["0.5", "1e3", "'a'", "'é'", "true", "false", "''", "999999999999999"]),
)
OPERANDS = st.one_of(
    paths(), LITERALS, st.one_of(paths(), LITERALS).map(lambda operand: f"$string({operand})")
)


@st.composite
def expressions(draw: st.DrawFn) -> str:
    shape = draw(st.sampled_from(["path", "binary", "string", "concatenation", "logic"]))
    if shape == "path":
        return draw(paths())
    if shape == "string":
        return f"$string({draw(OPERANDS)})"
    if shape == "concatenation":
        return " & ".join(draw(st.lists(OPERANDS, min_size=2, max_size=5)))
    if shape == "logic":
        comparison = st.builds(
            lambda a, op, b: f"{a} {op} {b}",
            OPERANDS,
            st.sampled_from(["<", ">=", "=", "!="]),
            OPERANDS,
        )
        sides = draw(st.lists(st.one_of(comparison, OPERANDS), min_size=2, max_size=4))
        joined = sides[0]
        for side in sides[1:]:
            joined += f" {draw(st.sampled_from(['and', 'or']))} {side}"
        return joined
    return f"{draw(OPERANDS)} {draw(st.sampled_from(OPERATORS))} {draw(OPERANDS)}"


def outcome(expression: str, states: dict[str, Any], variables: dict[str, Any], fast: bool) -> Any:
    """The value, or ("error", name, cause), of ``expression`` through the template."""
    template = jsonata.compile_template("{% " + expression + " %}", "Output")
    node = template._root
    assert isinstance(node, jsonata._Expression)
    saved = node.fast
    if not fast:
        node.fast = None
    try:
        return ("value", template.evaluate(states, variables))
    except StatesError as exc:
        return ("error", exc.error, exc.cause)
    finally:
        node.fast = saved


@settings(max_examples=1500, deadline=None)
@given(
    expression=expressions(),
    data=VALUES,
    context=VALUES,
    v=VALUES,
    w=st.one_of(st.none(), VALUES),
    shadow=st.booleans(),
)
def test_a_direct_read_is_the_librarys_outcome(
    expression: str, data: Any, context: Any, v: Any, w: Any, shadow: bool
) -> None:
    states = {"input": data, "context": context}
    variables = {"v": v} if w is None else {"v": v, "w": w}
    if shadow:  # a variable named like the function it hides
        variables["string"] = v
    before = copy.deepcopy((states, variables))
    direct = outcome(expression, states, variables, fast=True)
    library = outcome(expression, states, variables, fast=False)
    assert json.dumps(direct) == json.dumps(library), expression
    assert type(direct[1]) is type(library[1])  # 2 and 2.0, True and 1 told apart
    assert (states, variables) == before  # nothing read is changed


EDGES = [
    # doubles, where exact integers would differ
    ("$v < $w", 2**53 + 1, float(2**53)),
    ("$v >= $w", float(2**53), 2**53 + 1),
    ("$v = $w", 2**53 + 1, 2**53),
    ("$v != $w", 2**53 + 1, 2**53),
    ("$v + $w", 2**60, 1),
    ("$v - $w", 2**70, 1),
    ("$v < $w", 2**60 + 1, 2**60 + 2),  # two integers compare as they are
    # a whole result past 1e21 is an integer; a read one keeps its type
    ("$v * $w", 1e21, 1),
    ("$v * $w", 1e300, 10),
    ("$v", 1e300, 0),
    ("$v * $w", 1.5, 2),
    ("$v + $w", -0.0, 0),
    # out of range
    ("$v * $w", 1e300, 1e300),
    ("$v + $w", 2**1100, 1),
    ("$v < $w", 2**1100, 1.5),
    ("$v = $w", 2**1100, 1),
    ("$v < $w", 2**1100, 2**1101),
    # types the operators refuse or tell apart
    ("$v + $w", True, 1),
    ("$v = $w", True, 1),
    ("$v < $w", True, False),
    ("$v < $w", "a", 1),
    ("$v < $w", "é", "z"),
    ("$v = $w", "a", "a"),
    ("$v = $w", None, None),
    ("$v = $w", [1], [1]),
    ("$v + $w", None, 1),
    ("$v.a", {"a": [[1], []]}, 0),
    ("$v.a", {"a": []}, 0),
    ("$v.a.b", {"a": [{"b": 1}, {"b": [2, 3]}]}, 0),
    ("$v.a", [{"a": 1}], 0),
    # what & and $string print
    ("$v & $w", 10**15 - 1, -(10**15) + 1),
    ("$v & $w", 10**15, -(10**15)),
    ("$v & $w", 2.0, 1.5),
    ("$v & $w", 1e21, 0.1),
    ("$v & $w", True, None),
    ("$v & $w", {"a": 1}, [1, "x"]),
    ("$v & 'x' & $w", "é", "😀"),
    ("$string($v) & $string($w)", 12, "s"),
    ("$string($v)", 10**15, 0),
    ("$string($v)", -0.0, 0),
    ("$string($v)", [1], 0),
    ("$v & $nope", "a", 0),
    # and / or: booleans directly, the right side only when the left does not settle it
    ("$v and $w", True, False),
    ("$v or $w", False, True),
    ("$v and $nope", False, 0),
    ("$v or $nope", True, 0),
    ("$v and $nope", True, 0),
    ("$v and $w", True, "x"),
    ("$v or $w", 0, True),
    ("$v and $w", [], True),
    ("$v and $w.a + 1", False, {"a": "x"}),
    ("$v or $w.a + 1", False, {"a": "x"}),
    ("$v > 1 and $w = 'x' or $v < 0", 2, "x"),
]


@pytest.mark.parametrize(("expression", "v", "w"), EDGES)
def test_the_edges_are_the_librarys(expression: str, v: Any, w: Any) -> None:
    states: dict[str, Any] = {"input": {}, "context": {}}
    variables = {"v": v, "w": w}
    direct = outcome(expression, states, variables, fast=True)
    library = outcome(expression, states, variables, fast=False)
    assert json.dumps(direct) == json.dumps(library)
    assert type(direct[1]) is type(library[1])


@pytest.mark.parametrize(
    "expression",
    [
        "$states.input.a",
        "$v",
        "$states.context.Execution.Id",
        "$states.input.`a b`.c",
        "$states.input.n + 1",
        "$v * $w",
        "2 - $v",
        "$states.input.n < 10000",
        "$states.input.s = 'DONE'",
        "$v != true",
        "'a' & $v",
        "$string($v)",
        "'a' & $string($states.input.n) & 'b' & 1",
        "$v > 1 and $w = 'x'",
        "$v or $w and $states.input.n < 3",
        "$w or 'a' & $v",
        "$w and $v * 2",
        " & ".join(["$v"] * 32),
        " and ".join(["$v"] * 16) + " or " + " and ".join(["$w"] * 16),
    ],
)
def test_the_plain_shapes_are_read_directly(expression: str) -> None:
    assert compile_fast(jsonata._parse(expression).ast) is not None


@pytest.mark.parametrize(
    "expression",
    [
        "$states.input.a[0]",
        "$states.input.a[]",
        "$states.input.a[b > 1]",
        "$states.input.a#$i",
        "$states.input.a@$x",
        "$states.input.*",
        "$states.input.**",
        "$states.input.(a)",
        "$states.input.a^(b)",
        "$states.input.a{'k': b}",
        "$states.input.a.%",
        "$v / 2",
        "$v % 2",
        "($v > 1) and true",
        "$v + 1 and $w",
        "'a' & $v or $w",
        "$string($v) and $w",
        " and ".join(["$v"] * 17) + " or " + " and ".join(["$w"] * 16),
        "$v in [1]",
        "-$v",
        "($v)",
        "$v + $w + 1",
        "$__budget",
        "$v ? 1 : 2",
        "$v = null",
        "$string($v, true)",
        "$string()",
        "$string($v.a[0])",
        "$uppercase($v)",
        " & ".join(["$v"] * 33),
        "$v ~> $string()",
    ],
)
def test_every_other_shape_is_left_to_the_library(expression: str) -> None:
    assert compile_fast(jsonata._parse(expression).ast) is None


def test_a_miss_goes_to_the_library_which_reports_it() -> None:
    states: dict[str, Any] = {"input": {"items": [{"p": 1}, {"p": 2}], "s": "x"}, "context": {}}
    assert jsonata.compile_template("{% $states.input.items.p %}", "Output").evaluate(
        states, {}
    ) == [1, 2]
    with pytest.raises(StatesError, match="must evaluate to a number"):
        jsonata.compile_template("{% $states.input.s + 1 %}", "Output").evaluate(states, {})
    with pytest.raises(StatesError, match=r"returned nothing \(undefined\)"):
        jsonata.compile_template("{% $states.input.nope %}", "Output").evaluate(states, {})


def test_a_read_value_is_a_copy() -> None:
    states: dict[str, Any] = {"input": {"a": {"b": [1, {"c": 2.0}]}}, "context": {}}
    value = jsonata.compile_template("{% $states.input.a %}", "Output").evaluate(states, {})
    assert value == {"b": [1, {"c": 2}]} and type(value["b"][1]["c"]) is int
    value["b"].append(3)
    assert states["input"]["a"] == {"b": [1, {"c": 2.0}]}


class CountingBudget:
    """Counts the calls; raises ``error`` at the first check."""

    def __init__(self, error: Exception | None = None) -> None:
        self.starts = 0
        self.checks = 0
        self.error = error

    def start_expression(self) -> None:
        self.starts += 1

    def check(self) -> None:
        self.checks += 1
        if self.error is not None:
            raise self.error


def test_a_direct_read_checks_the_budget_once_and_the_library_is_not_called(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    original = jsonata.Jsonata.evaluate

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append("library")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(jsonata.Jsonata, "evaluate", counted)
    template = jsonata.compile_template(
        {"i": "{% $states.input.n + 1 %}", "s": "{% $states.input.n %}"}, "Output"
    )
    budget = CountingBudget()
    assert template.evaluate({"input": {"n": 1}}, {}, budget) == {"i": 2, "s": 1}
    assert (budget.checks, calls) == (2, [])
    # a miss ("x" + 1) is evaluated by the library, once, which reports its error
    with pytest.raises(StatesError, match="must evaluate to a number"):
        template.evaluate({"input": {"n": "x"}}, {}, CountingBudget())
    assert calls == ["library"]


def test_an_exceeded_expression_budget_fails_the_expression_as_the_library_does() -> None:
    template = jsonata.compile_template("{% $states.input.n %}", "Output")
    spent = BudgetExceeded("expression", 1.0)
    with pytest.raises(StatesError) as direct:
        template.evaluate({"input": {"n": 1}}, {}, CountingBudget(spent))
    assert direct.value.error == "States.QueryEvaluationError"
    assert direct.value.cause == (
        "The JSONata expression '$states.input.n' specified for the field 'Output' threw an"
        " error during evaluation: expression budget of 1 s exceeded"
    )


@pytest.mark.parametrize(
    "signal", [BudgetExceeded("decision", 5.0), DecisionDeferred()], ids=["decision", "deferred"]
)
def test_a_decisions_signal_passes_through_a_direct_read(signal: Exception) -> None:
    template = jsonata.compile_template("{% $states.input.n %}", "Output")
    with pytest.raises(type(signal)):
        template.evaluate({"input": {"n": 1}}, {}, CountingBudget(signal))


def test_a_reader_returns_miss_for_what_it_leaves() -> None:
    reader = compile_fast(jsonata._parse("$states.input.a.b").ast)
    assert reader is not None
    assert reader({"input": {"a": [{"b": 1}]}}, {}) is MISS
    assert reader({"input": {"a": {"c": 1}}}, {}) is MISS
    assert reader({"input": {"a": {"b": None}}}, {}) is None


def test_an_expression_that_runs_out_of_time_leaves_no_deadline_behind() -> None:
    # the clock jumps 5 s between the expression's start and its check (review 21)
    reads = iter([0.0, 0.0, 5.0, 5.0, 5.0, 5.0])
    budget = ClockBudget(lambda: next(reads), expression_seconds=1, decision_seconds=60)
    template = jsonata.compile_template("{% $states.input.n %}", "Output")
    with pytest.raises(StatesError) as failed:
        template.evaluate({"input": {"n": 1}, "context": {}}, {}, budget)
    assert failed.value.error == "States.QueryEvaluationError"
    budget.check()  # the next check, before any new expression starts, is not a timeout


@pytest.mark.parametrize("operator", ["and", "&"])
def test_a_chain_of_thousands_of_terms_compiles_and_goes_to_the_library(operator: str) -> None:
    # review 23: a long chain was walked to its bottom before the cap stopped it
    expression = "$v or " + f" {operator} ".join(["$w"] * 5000)
    assert compile_fast(jsonata._parse(expression).ast) is None
    template = jsonata.compile_template("{% " + expression + " %}", "Output")
    assert template.evaluate({"input": {}}, {"v": True, "w": "x"}) is True
