"""``$states`` without its context object, for fields that cannot read it.

The engine leaves the context object out of ``$states`` when no expression of a field
can read it (``JSONataTemplate.reads_context``). Every way an expression can reach the
context (a path, ``$states`` whole, a function, a variable bound to it, a wildcard, a
group, a predicate, a lambda) must count as reading it, and each execution below must
end exactly as it does with the context always built.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.data import jsonata
from stepflow.engine import dataflow
from stepflow.testing import execute

_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
READS = [
    "$states.context.Execution.Name",
    "$states",
    "$states.`context`.State.Name",
    "$states.(context)",
    "$states.*",
    "$states.**.Name",
    "$states[0].context",
    "$states#$i.context",
    "$keys($states)",
    "$lookup($states, 'context').Execution.Name",
    "$each($states, function($v, $k) {$k})",
    "($s := $states; $s.context.Execution.Name)",
    "function($x) {$x.context.Execution.Name}($states)",
    "$states ~> $keys()",
    "$states.input{'a': $states.context.State.Name}",
    "$states.input.a[$states.context.State.Name = 'P']",
    "$states.input.a ? $states.context.State.Name : 0",
    "$states.input.a & $string($states)",
    "[$states.input, $states.context.State.Name]",
    # a predicate, group, focus or index on $states sees it whole (review 24)
    "$states[context].input",
    "$states[$states.context.State.Name = 'Q'].input",
    "$states[$count($keys($)) = 3].input",
    "$states{'input': context.State.Name}.input",
    "$states#$i[$i = 0].input",
    "$states@$s.input",
    "$exists($states[context.State.Name = 'Q'].input)",
    "$states.input.%.context.State.Name",
    "$states.input.a.%.%.context.State.Name",
]
DOES_NOT_READ = [
    "$states.input",
    "$states.input.a.context",
    "$states.input.a + 1",
    "$states.input ~> $keys()",
    "$states.input{'k': $states.input.a}",
    "$v",
    "1 + 1",
    "'context'",
]


@pytest.mark.parametrize("expression", READS)
def test_every_way_to_the_context_counts_as_reading_it(expression: str) -> None:
    assert jsonata.reads_context(jsonata._parse(expression).ast)


@pytest.mark.parametrize("expression", DOES_NOT_READ)
def test_a_field_that_cannot_reach_the_context_is_told_apart(expression: str) -> None:
    assert not jsonata.reads_context(jsonata._parse(expression).ast)


def test_a_template_reads_the_context_if_any_of_its_expressions_does() -> None:
    assert not jsonata.compile_template({"a": ["{% $states.input %}", 1]}, "Output").reads_context
    template = jsonata.compile_template({"a": ["{% $states.input %}", "{% $states %}"]}, "Output")
    assert template.reads_context


@pytest.fixture
def fresh_templates() -> Iterator[None]:
    """No template compiled by an earlier test (or the other mode) is reused."""
    jsonata._cached_template.cache_clear()
    dataflow._jsonata_cache.clear()
    yield
    jsonata._cached_template.cache_clear()
    dataflow._jsonata_cache.clear()


def _outcome(expression: str) -> tuple[Any, ...]:
    machine = {
        "QueryLanguage": "JSONata",
        "StartAt": "P",
        "States": {
            "P": {
                "Type": "Pass",
                "Assign": {"v": "{% $states.input.a %}"},
                "Next": "Q",
            },
            "Q": {"Type": "Pass", "Output": {"out": "{% " + expression + " %}"}, "End": True},
        },
    }
    result = execute(machine, {"a": {"context": 1}}, name="run-1")
    output = _TIME.sub("<time>", result.output or "")  # two runs start at two times
    return result.status, output, result.error, result.cause


@pytest.mark.parametrize("expression", READS + DOES_NOT_READ)
def test_an_execution_ends_as_with_the_context_always_built(
    expression: str, fresh_templates: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    lean = _outcome(expression)
    jsonata._cached_template.cache_clear()
    dataflow._jsonata_cache.clear()
    monkeypatch.setattr(jsonata, "reads_context", lambda ast: True)
    assert lean == _outcome(expression)


def test_the_context_left_out_would_be_seen(
    fresh_templates: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the comparison above can fail: told wrongly, the field finds no context
    monkeypatch.setattr(jsonata, "reads_context", lambda ast: False)
    status, _, error, cause = _outcome("$states.context.Execution.Name")
    assert (status, error) == ("FAILED", "States.QueryEvaluationError")
    assert "returned nothing" in str(cause)


@pytest.fixture
def compiled(fresh_templates: None, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The field of each template the engine compiles, in order."""
    fields: list[str] = []
    original = dataflow.compile_template

    def counted(raw: Any, field: str) -> Any:
        fields.append(field)
        return original(raw, field)

    monkeypatch.setattr(dataflow, "compile_template", counted)
    return fields


def test_an_assign_template_is_compiled_once_per_definition_not_per_state_entered(
    compiled: list[str],
) -> None:
    # Assign was looked up by a copy made for each state entered: it never hit the cache
    machine = {
        "QueryLanguage": "JSONata",
        "StartAt": "Check",
        "States": {
            "Check": {
                "Type": "Choice",
                "Choices": [{"Condition": "{% $states.input.n < 50 %}", "Next": "Add"}],
                "Default": "Done",
            },
            "Add": {
                "Type": "Pass",
                "Assign": {"last": "{% $states.input.n %}"},
                "Output": {"n": "{% $states.input.n + 1 %}"},
                "Next": "Check",
            },
            "Done": {"Type": "Pass", "Output": "{% $last %}", "End": True},
        },
    }
    result = execute(machine, {"n": 0})
    assert result.status == "SUCCEEDED" and result.output == "49"
    assert sorted(compiled) == ["Assign", "Condition", "Output", "Output"]


@pytest.mark.parametrize("which", ["rule", "state", "both"])
def test_a_choices_assign_is_compiled_once_too(which: str, compiled: list[str]) -> None:
    # review 26: a Choice merged its Assign with the rule's anew on every entry
    rule: dict[str, Any] = {"Condition": "{% $states.input.n < 50 %}", "Next": "Add"}
    check: dict[str, Any] = {"Type": "Choice", "Choices": [rule], "Default": "Done"}
    if which in ("rule", "both"):
        rule["Assign"] = {"last": "{% $states.input.n %}"}
    if which in ("state", "both"):
        check["Assign"] = {"seen": "{% $states.input.n %}", "last": -1}
    machine = {
        "QueryLanguage": "JSONata",
        "StartAt": "Check",
        "States": {
            "Check": check,
            "Add": {"Type": "Pass", "Output": {"n": "{% $states.input.n + 1 %}"}, "Next": "Check"},
            "Done": {"Type": "Pass", "Output": "{% [$seen, $last] %}", "End": True},
        },
    }
    result = execute(machine, {"n": 0})
    assert result.status == "SUCCEEDED", result.cause
    expected = {"rule": [49], "state": [50, -1], "both": [50, -1]}[which]
    assert json.loads(result.output or "null") == expected
    # the default branch's Assign is the state's own mapping; a matched rule's is merged once
    assert compiled.count("Assign") <= 2, compiled


def test_a_jsonpath_choices_assign_is_built_once(fresh_templates: None) -> None:
    dataflow._assign_cache.clear()
    machine = {
        "StartAt": "Check",
        "States": {
            "Check": {
                "Type": "Choice",
                "Assign": {"seen.$": "$.n"},
                "Choices": [
                    {
                        "Variable": "$.n",
                        "NumericLessThan": 50,
                        "Assign": {"last.$": "$.n"},
                        "Next": "Add",
                    }
                ],
                "Default": "Done",
            },
            "Add": {
                "Type": "Pass",
                "Parameters": {"n.$": "States.MathAdd($.n, 1)"},
                "Next": "Check",
            },
            "Done": {
                "Type": "Pass",
                "Parameters": {"seen.$": "$seen", "last.$": "$last"},
                "End": True,
            },
        },
    }
    result = execute(machine, {"n": 0})
    assert result.status == "SUCCEEDED" and json.loads(result.output or "null") == {
        "seen": 50,
        "last": 49,
    }
    assert len(dataflow._assign_cache) <= 2  # the merged one and the state's own
