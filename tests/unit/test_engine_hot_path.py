"""The counter loop's hot path: fewer encodings, same history; shortcuts equal the general rules."""

from __future__ import annotations

import importlib
import json
import math
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stepflow.data import intrinsics
from stepflow.data.budget import UNLIMITED
from stepflow.data.jsonpath import compile_path
from stepflow.data.scope import Scope
from stepflow.engine import choice, dataflow
from stepflow.engine.model import Frame
from stepflow.testing import execute

LOOP: dict[str, Any] = {
    "StartAt": "Check",
    "States": {
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.i", "NumericLessThan": 5, "Next": "Increment"}],
            "Default": "Done",
        },
        "Increment": {
            "Type": "Pass",
            "Parameters": {
                "i.$": "States.MathAdd($.i, 1)",
                "label.$": "States.Format('iteration {}', $.i)",
            },
            "Next": "Mark",
        },
        "Mark": {
            "Type": "Pass",
            "Result": {"marked": True},
            "ResultPath": "$.mark",
            "Next": "Check",
        },
        "Done": {"Type": "Succeed"},
    },
}


def test_each_new_value_is_encoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    # The Decider encodes through Transitions.text and exit_state, and in its run loop (a
    # planned state's exit): orjson's dumps called directly (json_bytes), serialize.dumps
    # where orjson refuses a value; all counted.
    for name in ("stepflow.engine.transitions", "stepflow.engine.decide"):
        module = importlib.import_module(name)
        for attribute in ("dumps", "json_bytes"):
            encode = getattr(module, attribute)
            monkeypatch.setattr(
                module, attribute, lambda value, encode=encode: calls.append(value) or encode(value)
            )
    result = execute(LOOP, {"i": 0})
    assert result.result == {"i": 5, "label": "iteration 4", "mark": {"marked": True}}
    # ExecutionStarted's input, then per round Increment's and Mark's outputs
    assert len(calls) == 1 + 2 * 5
    texts = [
        (e.get("stateEnteredEventDetails") or e.get("stateExitedEventDetails") or {}).get(k)
        for e in result.history
        for k in ("input", "output")
    ]
    assert texts.count('{"i":0}') == 3  # Check entered and exited, Increment entered
    assert texts.count('{"i":5,"label":"iteration 4","mark":{"marked":true}}') == 5


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=40, deadline=None)
@given(extra=st.dictionaries(st.text(min_size=1, max_size=4), JSON_VALUES, max_size=3))
def test_every_recorded_text_is_the_value_it_names(extra: dict[str, Any]) -> None:
    start = {**extra, "i": 3}
    result = execute(LOOP, start)
    seen = [
        details[key]
        for e in result.history
        for details in (e.get("stateEnteredEventDetails"), e.get("stateExitedEventDetails"))
        if details
        for key in ("input", "output")
        if key in details
    ]
    expected = [start, start]  # Check entered, exited
    value = start
    for i in (3, 4):
        value = {"i": i + 1, "label": f"iteration {i}"}
        expected += [expected[-1], value]  # Increment entered, exited
        marked = {**value, "mark": {"marked": True}}
        expected += [value, marked, marked, marked]  # Mark entered, exited; Check entered, exited
        value = marked
    expected += [value, value]  # Done entered, exited
    assert [json.loads(text) for text in seen] == expected


def _java_round(value: float) -> int:
    """Java's Math.round, written out: the oracle of the integer shortcut."""
    floor = math.floor(value)
    return int(floor + 1 if value - floor >= 0.5 else floor)


@given(st.integers(-(2**70), 2**70) | st.sampled_from([-(2**31), 2**31 - 1, -(2**31) - 1, 2**31]))
def test_an_integer_rounds_as_the_general_rule_says(value: int) -> None:
    expected = _java_round(value)
    if -(2**31) <= expected <= 2**31 - 1:
        assert intrinsics._rounded("States.MathAdd", value) == expected
    else:
        with pytest.raises(intrinsics._Failure):
            intrinsics._rounded("States.MathAdd", value)


@pytest.mark.parametrize("value", [True, False, 1.5, -2.5, math.inf, "1", None])
def test_what_is_not_an_integer_takes_the_general_rule(value: Any) -> None:
    if isinstance(value, float) and math.isfinite(value):
        assert intrinsics._rounded("States.MathAdd", value) == _java_round(value)
    else:
        with pytest.raises(intrinsics._Failure):
            intrinsics._rounded("States.MathAdd", value)


RELATIONS = ["Equals", "GreaterThan", "GreaterThanEquals", "LessThan", "LessThanEquals"]
SCALARS = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-5, 5) | st.text(max_size=2)


@given(a=SCALARS, b=SCALARS, family=st.sampled_from(["Numeric", "String", "Boolean"]))
def test_choice_relations_by_table_equal_the_comparisons(a: Any, b: Any, family: str) -> None:
    for relation in RELATIONS:
        op = family + relation
        assert choice._split(op) == (family, relation)
        compare = choice._FAMILIES[family]
        if family == "Boolean" and relation != "Equals":
            continue
        written = {
            "Equals": lambda x, y: x == y,
            "GreaterThan": lambda x, y: x > y,
            "GreaterThanEquals": lambda x, y: x >= y,
            "LessThan": lambda x, y: x < y,
            "LessThanEquals": lambda x, y: x <= y,
        }[relation]
        if family == "Numeric":
            typed = choice._is_number(a) and choice._is_number(b)
        elif family == "String":
            typed = isinstance(a, str) and isinstance(b, str)
        else:
            typed = isinstance(a, bool) and isinstance(b, bool)
        assert compare(a, b, relation) == (typed and bool(written(a, b)))


def test_an_unknown_operator_or_relation_is_refused() -> None:
    with pytest.raises(ValueError):
        choice._split("NumberLessThan")
    with pytest.raises(ValueError):
        choice._relate(1, 2, "Below")


@given(st.integers() | st.booleans())
def test_an_integer_prints_as_the_general_rule_says(value: int) -> None:
    from stepflow.data import java_text

    assert java_text.to_java_string(value) == java_text._scalar_text(value)
    assert java_text.to_java_string([value]) == f"[{java_text._scalar_text(value)}]"


def test_a_failing_nested_call_names_the_whole_expression() -> None:
    from stepflow.data.scope import Scope
    from stepflow.errors import StatesError

    run = intrinsics.compile_intrinsic("States.Format('{}', States.MathAdd($.i, $.missing))")
    with pytest.raises(StatesError) as caught:
        run(Scope({"i": 1}))
    assert caught.value.cause is not None
    assert caught.value.cause.startswith(
        "The function 'States.Format('{}', States.MathAdd($.i, $.missing))' had the following "
        "error: The JsonPath argument for the field '$.missing' could not be found"
    )
    with pytest.raises(StatesError, match=r"Invalid arguments in States\.MathAdd"):
        intrinsics.compile_intrinsic("States.MathAdd($.i, 'x')")(Scope({"i": 1}))


class _Decision:
    """An EvalContext's context and budget, counting the context objects it builds."""

    def __init__(self) -> None:
        self.built = 0
        self.state = SimpleNamespace(outer_variables={})  # what state_scope reads of it
        self.time_budget = UNLIMITED

    def context(self, frame: Frame, **extra: Any) -> dict[str, Any]:
        self.built += 1
        return {"State": {"Name": frame.state}, "Built": self.built, **extra}


# each step: read $$ (context), read $ (input), rebind $ to a new value (with_input)
SCOPE_STEPS = st.lists(st.sampled_from(["context", "input", "with_input"]), max_size=8)


@given(SCOPE_STEPS)
@settings(max_examples=200, deadline=None)
def test_a_state_scope_is_the_general_scope_with_its_context_built_on_first_read(
    steps: list[str],
) -> None:
    # The general rule: Scope(value, lambda: d.context(frame), ...); state_scope builds
    # its context from the decision without the closure. Same values, same builds.
    fast_decision, general_decision = _Decision(), _Decision()
    frame = Frame(id="", machine="", state="Work", input={"i": 1})
    fast = dataflow.state_scope(fast_decision, frame, {"i": 1})  # type: ignore[arg-type]
    general = Scope({"i": 1}, lambda: general_decision.context(frame), frame.variables, UNLIMITED)
    for n, step in enumerate(steps):
        if step == "context":
            assert fast.context == general.context
        elif step == "input":
            assert fast.read(compile_path("$.i")) == general.read(compile_path("$.i"))
        else:
            fast, general = fast.with_input({"i": n}), general.with_input({"i": n})
        assert fast_decision.built == general_decision.built
    assert fast.read(compile_path("$$.State.Name")) == "Work"
