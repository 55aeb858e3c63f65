"""Poison data inside a running execution fails that execution with States.Runtime.

Anything the log cannot store (a lone surrogate made by ``States.StringToJson``
or JSONata's ``$parse``, NaN or Infinity, a value that is not JSON, an item too
large even for offload) fails the execution it appeared in, in one commit:
no endless redelivery, no dead-letter queue, the head FAILED, and other
executions go on. Both backends: the in-memory log, and the DynamoDB log on
moto with every message through the real stepper Lambda handler.
"""

from __future__ import annotations

from typing import Any

import pytest
from stepflow.limits import MIB, Limits
from stepflow.testing import WorkflowEnvironment, open_environment

BACKENDS = ["memory", "moto"]

SURROGATE_INPUT = {"s": '"\\ud800"'}
"""ASCII JSON whose parse is a lone surrogate."""


def _pass(parameters: dict[str, Any], *, wait_first: bool = False) -> dict[str, Any]:
    states: dict[str, Any] = {"P": {"Type": "Pass", "Parameters": parameters, "End": True}}
    if wait_first:  # the poison comes in a later decision, not the execution's first
        states["W"] = {"Type": "Wait", "Seconds": 5, "Next": "P"}
    return {"StartAt": "W" if wait_first else "P", "States": states}


def _jsonata(output: str) -> dict[str, Any]:
    return {
        "QueryLanguage": "JSONata",
        "StartAt": "P",
        "States": {"P": {"Type": "Pass", "Output": output, "End": True}},
    }


def _task(resource: str) -> dict[str, Any]:
    return {
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": f"arn:aws:lambda:us-east-1:123456789012:function:{resource}",
                "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 3}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Succeed"},
        },
    }


CALLS: dict[str, int] = {}


def _handler(name: str, value: Any) -> Any:
    def handle(_payload: Any) -> Any:
        CALLS[name] = CALLS.get(name, 0) + 1
        return value

    return handle


HANDLERS = {
    "surrogate": _handler("surrogate", {"text": "\ud800"}),
    "nan": _handler("nan", {"x": float("nan")}),
    "infinity": _handler("infinity", [float("inf")]),
    "object": _handler("object", {"x": object()}),
}


def _run(env: WorkflowEnvironment, definition: dict[str, Any], value: Any) -> str:
    arn = env.start(env.register(definition), value)
    env.run(arn)
    return arn


def _assert_failed_once(env: WorkflowEnvironment, arn: str, problem: str) -> None:
    result = env.result(arn)
    assert (result.status, result.error) == ("FAILED", "States.Runtime"), result
    assert result.cause is not None and problem in result.cause, result.cause
    result.cause.encode("ascii")  # safe to encode anywhere
    history = env.history(arn)
    assert sum(e["type"] == "ExecutionFailed" for e in history) == 1
    assert history[-1]["type"] == "ExecutionFailed"
    record = env.log.get(arn)
    assert record is not None and record.status == "FAILED" and record.outbox == ()
    # every delivery was acknowledged the first time: nothing redelivered, nothing to a DLQ
    assert env._receives == {}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("wait_first", [False, True], ids=["first-decision", "later-decision"])
def test_string_to_json_making_a_lone_surrogate_fails_the_execution(
    backend: str, wait_first: bool
) -> None:
    with open_environment(backend) as env:
        # GIVEN an execution whose Pass state parses ASCII into a lone surrogate, and a
        # healthy execution next to it
        bad = env.start(
            env.register(_pass({"v.$": "States.StringToJson($.s)"}, wait_first=wait_first)),
            SURROGATE_INPUT,
        )
        good = env.start(env.register(_pass({"v.$": "$.s"}, wait_first=True), "ok"), {"s": "x"})
        # WHEN both run
        env.run()
        # THEN the poisoned one FAILED with States.Runtime naming the surrogate, once;
        # the other succeeded
        _assert_failed_once(env, bad, "lone surrogate (\\ud800)")
        assert env.result(good).status == "SUCCEEDED"


@pytest.mark.parametrize("backend", BACKENDS)
def test_jsonata_parse_making_a_lone_surrogate_fails_the_execution(backend: str) -> None:
    with open_environment(backend) as env:
        arn = _run(env, _jsonata("{% $parse($states.input.s) %}"), SURROGATE_INPUT)
        _assert_failed_once(env, arn, "lone surrogate")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("surrogate", "lone surrogate"),
        ("nan", "NaN or Infinity"),
        ("infinity", "NaN or Infinity"),
        ("object", "not JSON"),
    ],
)
def test_a_task_result_no_log_can_hold_fails_the_execution_without_retry(
    backend: str, name: str, problem: str
) -> None:
    # GIVEN a task that returns poison, with a Retry and a Catch on States.ALL
    CALLS.clear()
    with open_environment(backend, handlers=HANDLERS) as env:
        arn = _run(env, _task(name), {})
        # THEN the execution FAILED with States.Runtime (neither retried nor caught), and
        # the task ran once
        _assert_failed_once(env, arn, problem)
    assert {name: 1} == CALLS


@pytest.mark.parametrize(("text", "problem"), [("1e999", "Invalid"), ("NaN", "Invalid")])
def test_string_to_json_refuses_numbers_json_cannot_hold(text: str, problem: str) -> None:
    with open_environment("memory") as env:
        arn = _run(env, _pass({"v.$": "States.StringToJson($.s)"}), {"s": text})
        result = env.result(arn)
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert result.cause is not None and problem in result.cause


def test_an_item_too_large_even_for_offload_fails_the_execution() -> None:
    # GIVEN the DynamoDB log without a payload store and the payload limit raised to 4 MiB
    # (and the expression budget raised: building 1.5 MB is about 1 s of CPU, the
    # default budget, on a loaded machine; this test is about the item limit)
    limits = Limits(max_payload_bytes=4 * MIB, expression_budget_seconds=30.0)
    with open_environment("moto", limits=limits) as env:
        # WHEN a state outputs 1.5 MB: within the limit, but past DynamoDB's 400 KB item
        big = "{% $map([1..80000], function($v) {$random()}) %}"  # ~1.5 MB, ~600 KB zipped
        arn = _run(env, _jsonata(big), {})
        # THEN the execution FAILED with States.Runtime naming the item limit, nothing stuck
        _assert_failed_once(env, arn, "400 KB")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("wait_first", [False, True], ids=["first-decision", "later-decision"])
@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_string_to_json_of_a_very_deep_text_fails_the_execution_cleanly(
    backend: str, wait_first: bool, depth: int
) -> None:
    # review: 100,000 brackets made json.loads raise RecursionError out of the decision
    # (a 500 InternalFailure from StartExecution; a crashing stepper later on)
    with open_environment(backend) as env:
        definition = _pass({"v.$": "States.StringToJson($.s)"}, wait_first=wait_first)
        arn = env.start(env.register(definition), {"s": "[" * depth + "]" * depth})
        env.run(arn)
        result = env.result(arn)
        if depth <= 1_024:  # within orjson's bound: parsed and stored
            assert result.status == "SUCCEEDED", result
            return
        assert (result.status, result.error) == ("FAILED", "States.Runtime"), result
        assert result.cause is not None and "deeper than 1024" in result.cause
        history = env.history(arn)
        assert sum(e["type"] == "ExecutionFailed" for e in history) == 1
        assert env._receives == {}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("wait_first", [False, True], ids=["first-decision", "later-decision"])
def test_an_unexpected_error_inside_the_engine_fails_the_execution_not_its_message(
    backend: str, wait_first: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepflow.data import intrinsics

    def broken(_name: str, _args: list[Any], _nodes: Any) -> Any:
        raise TypeError("unforeseen")  # a defect no evaluator foresaw

    # (the path is new to this test: compiled intrinsics are cached by their text)
    monkeypatch.setitem(intrinsics._FUNCTIONS, "States.UUID", intrinsics._Function(0, 1, broken))
    with open_environment(backend) as env:
        # GIVEN an execution whose evaluation raises an exception StepFlow did not foresee,
        # and a healthy execution next to it
        bad = env.start(
            env.register(_pass({"v.$": "States.UUID($.unforeseen)"}, wait_first=wait_first)),
            {"unforeseen": 1},
        )
        good = env.start(env.register(_pass({"v.$": "$.s"}, wait_first=True), "ok"), {"s": "x"})
        # WHEN both run
        env.run()
        # THEN the broken one FAILED with States.Runtime naming only the error's type, once,
        # its message acknowledged (no redelivery towards the DLQ); the other succeeded
        _assert_failed_once(env, bad, "unexpected TypeError")
        assert "unforeseen" not in str(env.result(bad).cause)
        assert env.result(good).status == "SUCCEEDED"
