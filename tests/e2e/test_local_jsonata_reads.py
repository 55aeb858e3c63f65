"""JSONata through ``stepflow local``: plain reads skip the library, the rest go through it.

A JSONata loop (a Choice whose Condition is ``$states.input.n < 3 and ...``, a Pass whose Output
adds 1, variables, the context, a path mapped over an array and an arithmetic error
caught) runs through boto3 against the stack and through ``stepflow.testing.execute``.
Both give the same output and the same history; jsonata-python evaluates exactly the
expressions that are not plain reads (counted), so the plain ones took the direct path
on the path that ships.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.data import jsonata
from stepflow.local import LocalStack
from stepflow.testing import execute

ROLE = "arn:aws:iam::123456789012:role/stepflow/JsonataRole"
BAD_BRANCH = {
    "StartAt": "Add1",
    "States": {"Add1": {"Type": "Pass", "Output": "{% $states.input.who + 1 %}", "End": True}},
}
LOOP: dict[str, Any] = {
    "QueryLanguage": "JSONata",
    "StartAt": "Check",
    "States": {
        "Check": {
            "Type": "Choice",
            "Choices": [
                {"Condition": "{% $states.input.n < 3 and $states.input.n >= 0 %}", "Next": "Add"}
            ],
            "Default": "Prices",
        },
        "Add": {
            "Type": "Pass",
            "Assign": {"seen": "{% $states.input.n %}"},
            "Output": {
                "n": "{% $states.input.n + 1 %}",
                "items": "{% $states.input.items %}",
                "who": "{% $states.context.Execution.Name %}",
            },
            "Next": "Check",
        },
        "Prices": {
            "Type": "Pass",
            "Output": {
                "prices": "{% $states.input.items.price %}",
                "last": "{% $seen %}",
                "who": "{% $states.input.who %}",
            },
            "Next": "Bad",
        },
        "Bad": {
            "Type": "Parallel",
            "Branches": [BAD_BRANCH],
            "Catch": [
                {
                    "ErrorEquals": ["States.ALL"],
                    "Output": "{% $states.errorOutput %}",
                    "Next": "Done",
                }
            ],
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}
INPUT = {"n": 0, "items": [{"price": 5}, {"price": 7}]}
# the expressions jsonata-python evaluates: the path over an array and the failing "+";
# the Catch's Output is a plain read of $states.errorOutput
LIBRARY = Counter({"$states.input.items.price": 1, "$states.input.who + 1": 1})


@pytest.fixture
def library_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Each expression text jsonata-python evaluates, counted."""
    calls: Counter[str] = Counter()
    texts = {id(node.compiled): node.text for node in _expressions()}
    original = jsonata.Jsonata.evaluate

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls[texts.get(id(self), "?")] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(jsonata.Jsonata, "evaluate", counted)
    return calls


def _expressions() -> Iterator[jsonata._Expression]:
    """The compiled expressions of LOOP's fields, as the engine will find them (cached)."""
    fields: list[tuple[Any, str]] = []
    for state in [*LOOP["States"].values(), *BAD_BRANCH["States"].values()]:
        for name in ("Output", "Assign"):
            if name in state:
                fields.append((state[name], name))
        for i, choice in enumerate(state.get("Choices", [])):
            fields.append((choice["Condition"], f"Choices[{i}]/Condition"))
        for catcher in state.get("Catch", []):
            fields.append((catcher["Output"], "Output"))
    for raw, field in fields:
        yield from _nodes(jsonata.compile_template(raw, field)._root)


def _nodes(node: Any) -> Iterator[jsonata._Expression]:
    if isinstance(node, jsonata._Expression):
        yield node
    for _, child in getattr(node, "members", ()):
        yield from _nodes(child)
    for child in getattr(node, "items", ()):
        yield from _nodes(child)


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0, handlers={}) as running:
        yield running


def _history(sfn: Any, arn: str) -> list[tuple[str, Any]]:
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    shown = []
    for event in events:
        details = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
        shown.append((event["type"], details.get("output") or details.get("input")))
    return shown


def test_plain_reads_skip_the_library_on_the_local_stack_and_in_memory(
    stack: LocalStack, library_calls: Counter[str]
) -> None:
    sfn = stack.stepfunctions()
    machine = sfn.create_state_machine(
        name="jsonata-reads", definition=json.dumps(LOOP), roleArn=ROLE
    )["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine, name="run-1", input=json.dumps(INPUT))[
        "executionArn"
    ]
    deadline = time.monotonic() + 60
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the execution did not finish"
        time.sleep(0.05)
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["Error"] == "States.QueryEvaluationError"
    assert "must evaluate to a number" in output["Cause"]
    assert library_calls == LIBRARY
    local_history = _history(sfn, arn)
    prices = next(o for t, o in local_history if t == "PassStateExited" and o and "prices" in o)
    assert json.loads(prices) == {"prices": [5, 7], "last": 2, "who": "run-1"}

    # the same machine in memory, through the same driver: the same outcome and counts
    library_calls.clear()
    result = execute(LOOP, INPUT, name="run-1")
    assert result.status == "SUCCEEDED" and json.loads(result.output) == output
    assert library_calls == LIBRARY
    memory_history = [
        (e["type"], (next((v for k, v in e.items() if k.endswith("EventDetails")), {}) or {}))
        for e in result.history
    ]
    assert [(t, d.get("output") or d.get("input")) for t, d in memory_history] == local_history
