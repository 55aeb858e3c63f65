"""A hostile reading of the inline Map past ``child_limit`` (a map run of child executions).

Each test runs the same definition on 41 items twice, with every iteration in the parent
(``child_limit=None``) and as a map run (``child_limit=40``), through the same driver
(:class:`stepflow.testing.WorkflowEnvironment`), and compares what AWS shows of the
Map: output, error and cause, the parent's Map events, the calls of each handler.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from stepflow.testing import WorkflowEnvironment

FN = "arn:aws:lambda:us-east-1:123456789012:function:fn"
N = 41


class Boom(Exception):
    """A handler's failure (its error name is the class name)."""


def _definition(**fields: Any) -> dict[str, Any]:
    return {
        "StartAt": "Init",
        "States": {
            "Init": {"Type": "Pass", "Assign": {"k": 5}, "Next": "M"},
            "M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {
                    "i.$": "$$.Map.Item.Index",
                    "v.$": "$$.Map.Item.Value",
                    "k.$": "$k",
                    "tag.$": "$$.Execution.Input.tag",
                },
                "ItemProcessor": {
                    "StartAt": "A",
                    "States": {
                        "A": {"Type": "Pass", "Assign": {"inner.$": "$.i"}, "Next": "B"},
                        "B": {
                            "Type": "Pass",
                            "Parameters": {
                                "i.$": "$inner",
                                "k.$": "$k",
                                "v.$": "$.v",
                                "id.$": "$$.Execution.Id",
                                "tag.$": "$$.Execution.Input.tag",
                                "rc.$": "$$.Execution.RedriveCount",
                            },
                            "Next": "T",
                        },
                        "T": {"Type": "Task", "Resource": FN, "End": True},
                    },
                },
                "ResultSelector": {"n.$": "States.ArrayLength($)", "all.$": "$"},
                "ResultPath": "$.res",
                "Assign": {"count.$": "$.n"},
                "Next": "After",
                **fields,
            },
            "After": {
                "Type": "Pass",
                "Parameters": {"count.$": "$count", "res.$": "$.res"},
                "End": True,
            },
        },
    }


def _run(
    definition: dict[str, Any], child_limit: int | None, fail: set[int] | None = None
) -> tuple[WorkflowEnvironment, str, Counter[int]]:
    calls: Counter[int] = Counter()

    def fn(payload: dict[str, Any]) -> Any:
        calls[payload["i"]] += 1
        if payload["i"] in (fail or set()):
            raise Boom(f"item {payload['i']}")
        return {key: payload[key] for key in ("i", "k", "id", "tag", "rc")}

    env = WorkflowEnvironment(handlers={"fn": fn}, child_limit=child_limit, start_time=0.0)
    items = {"items": [{"n": i} for i in range(N)], "tag": "T"}
    arn = env.start(definition, items, name="x")
    env.run(arn)
    return env, arn, calls


def _map_events(env: WorkflowEnvironment, arn: str) -> list[tuple[str, Any]]:
    found = []
    for event in env.history(arn):
        if event["type"].startswith(("Map", "Execution", "EvaluationFailed")):
            details = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
            found.append(
                (event["type"], details.get("index") if isinstance(details, dict) else None)
            )
    return found


def test_a_map_run_gives_the_same_output_and_map_events_as_iterations_in_the_parent() -> None:
    seen = {}
    for limit in (None, 40):
        env, arn, calls = _run(_definition(), limit)
        result = env.result(arn)
        assert result.status == "SUCCEEDED"
        assert calls == Counter(range(N))  # each item once
        seen[limit] = (json.loads(result.output or "null"), Counter(_map_events(env, arn)))
    assert seen[None] == seen[40]
    output = seen[40][0]
    assert output["count"] == N and [r["i"] for r in output["res"]["all"]] == list(range(N))


def _selector_error(jsonata: bool) -> dict[str, Any]:
    if not jsonata:
        return _definition(ItemSelector={"bad.$": "$$.Map.Item.Value.missing"})
    return {
        "QueryLanguage": "JSONata",
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "Items": "{% $states.input.items %}",
                "ItemSelector": {"bad": "{% $number('x') %}"},
                "ItemProcessor": {
                    "StartAt": "T",
                    "States": {"T": {"Type": "Task", "Resource": FN, "End": True}},
                },
                "End": True,
            }
        },
    }


def test_an_item_selector_that_fails_fails_the_map_state_as_in_the_parent() -> None:
    # The run evaluates ItemSelector; its error is the Map state's own (where, and
    # EvaluationFailed for JSONata), not an iteration's. Failed before: no prefix, no event.
    for jsonata in (False, True):
        seen = {}
        for limit in (None, 40):
            env, arn, calls = _run(_selector_error(jsonata), limit)
            result = env.result(arn)
            seen[limit] = (result.status, result.error, result.cause, _map_events(env, arn))
            assert not calls
        assert seen[None] == seen[40]
        assert str(seen[40][2]).startswith("An error occurred while executing the state 'M'")


def test_a_redrive_runs_only_the_failed_iterations_of_the_map_run_again() -> None:
    # AWS: "For workflows that include an Inline Map ... RedriveExecution reschedules and
    # redrives only the iterations ... that failed or aborted." (ran all 41 again before)
    fail = {7}
    env, arn, calls = _run(_definition(MaxConcurrency=5), 40, fail)
    assert env.result(arn).status == "FAILED" and env.result(arn).error == "Boom"
    before = sum(calls.values())
    fail.clear()
    env.stepper.redrive_execution(arn)
    env.run(arn)
    result = env.result(arn)
    assert result.status == "SUCCEEDED"
    assert calls[7] == 2 and all(calls[i] == 1 for i in range(N) if i != 7)
    assert sum(calls.values()) == N + 1 and before < N
    output = json.loads(result.output or "null")
    assert [r["i"] for r in output["res"]["all"]] == list(range(N))
    # $$.Execution.RedriveCount: 1 in the iterations first started by the redrive (was 0);
    # item 7 is redriven from its failed Task, after the Pass that read it (0)
    assert [r["rc"] for r in output["res"]["all"]] == [int(i >= before) for i in range(N)]
    events = _map_events(env, arn)
    redriven = events[events.index(("ExecutionRedriven", None)) :]
    started = [i for t, i in redriven if t == "MapIterationStarted"]
    # the failed one and those never started (MaxConcurrency 5: none past ``before``)
    assert sorted(started) == [7, *range(before, N)] and ("MapIterationSucceeded", 7) in redriven
    assert Counter(t for t, _ in events)["MapIterationSucceeded"] == N


def test_a_redrive_after_a_stop_runs_only_the_iterations_that_did_not_succeed() -> None:
    callback = "arn:aws:states:::lambda:invoke.waitForTaskToken"
    definition = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": 10,
                "ItemProcessor": {
                    "StartAt": "T",
                    "States": {
                        "T": {
                            "Type": "Task",
                            "Resource": callback,
                            "Parameters": {
                                "FunctionName": "cb",
                                "Payload": {"i.$": "$.i", "t.$": "$$.Task.Token"},
                            },
                            "End": True,
                        }
                    },
                },
                "End": True,
            }
        },
    }
    env = WorkflowEnvironment(child_limit=40, start_time=0.0)
    arn = env.start(definition, {"items": [{"i": i} for i in range(N)]}, name="x")
    env.run(arn)
    opened: Counter[str] = Counter()
    first = env.open_tasks(arn)
    assert len(first) == 10
    for task in first[:3]:
        env.complete(task.token, {"done": True})
    env.stop(arn)
    assert env.describe(arn)["status"] == "ABORTED" and not env.open_tasks()
    env.stepper.redrive_execution(arn)
    env.run(arn)
    answered = 3
    while env.describe(arn)["status"] == "RUNNING":
        tasks = env.open_tasks(arn)
        assert tasks, "the redriven Map waits on nothing"
        for task in tasks:
            opened[task.token] += 1
            env.complete(task.token, {"done": True})
            answered += 1
        env.run(arn)
    assert env.describe(arn)["status"] == "SUCCEEDED"
    assert answered == N  # the 3 that succeeded before the stop did not run again
    assert all(count == 1 for count in opened.values())


def test_an_iteration_that_fails_again_after_a_redrive_fails_the_map_with_its_own_error() -> None:
    # The redriven run counts it from the child's record: it used to end the Map with
    # States.ExceedToleratedFailureThreshold (the run's rule), not the iteration's error.
    env, arn, calls = _run(_definition(), 40, {7})
    env.stepper.redrive_execution(arn)
    env.run(arn)
    result = env.result(arn)
    assert (result.status, result.error, result.cause) == ("FAILED", "Boom", "item 7")
    assert calls[7] == 2
    failed = [i for t, i in _map_events(env, arn) if t == "MapIterationFailed"]
    assert failed == [7, 7]


def test_a_stopped_map_run_leaves_its_iterations_events_in_the_parents_history() -> None:
    callback = "arn:aws:states:::lambda:invoke.waitForTaskToken"
    task = {
        "Type": "Task",
        "Resource": callback,
        "Parameters": {"FunctionName": "cb", "Payload": {"t.$": "$$.Task.Token"}},
        "End": True,
    }
    definition = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": 10,
                "ItemProcessor": {"StartAt": "T", "States": {"T": task}},
                "End": True,
            }
        },
    }
    seen = {}
    for limit in (None, 40):
        env = WorkflowEnvironment(child_limit=limit, start_time=0.0)
        arn = env.start(definition, {"items": list(range(N))}, name="x")
        env.run(arn)
        for open_task in env.open_tasks(arn)[:3]:
            env.complete(open_task.token, {})
        env.stop(arn)
        assert not env.open_tasks()
        seen[limit] = Counter(t for t, _ in _map_events(env, arn))
    assert seen[40] == seen[None]  # 13 MapIterationStarted, 3 MapIterationSucceeded


def test_a_redrive_never_runs_the_map_run_of_a_state_left_behind() -> None:
    # Map A fails and is caught; a later Task fails; the redrive (same virtual instant)
    # reaches Map B, which must start its own run, not redrive A's (it did).
    attempts: Counter[str] = Counter()

    def flaky(payload: Any) -> Any:
        attempts["flaky"] += 1
        if attempts["flaky"] == 1:
            raise Boom("first attempt")
        return payload

    def fn(payload: dict[str, Any]) -> Any:
        attempts[f"{payload['m']}{payload['i']}"] += 1
        if payload["m"] == "A" and payload["i"] == 7:
            raise Boom("item 7")
        return payload["i"]

    def each(name: str, nxt: str, **fields: Any) -> dict[str, Any]:
        return {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemSelector": {"i.$": "$$.Map.Item.Index", "m": name},
            "ItemProcessor": {
                "StartAt": "T",
                "States": {"T": {"Type": "Task", "Resource": FN, "End": True}},
            },
            "Next": nxt,
            **fields,
        }

    definition = {
        "StartAt": "A",
        "States": {
            "A": each(
                "A",
                "X",
                Catch=[{"ErrorEquals": ["Boom"], "Next": "X", "ResultPath": "$.error"}],
                ResultPath=None,
            ),
            "X": {
                "Type": "Task",
                "Resource": "arn:aws:lambda:us-east-1:123456789012:function:flaky",
                "ResultPath": None,
                "Next": "B",
            },
            "B": each("B", "Done"),
            "Done": {"Type": "Succeed"},
        },
    }
    env = WorkflowEnvironment(handlers={"fn": fn, "flaky": flaky}, child_limit=40, start_time=0.0)
    arn = env.start(definition, {"items": list(range(N))}, name="x")
    env.run(arn)
    assert env.result(arn).error == "Boom"
    env.stepper.redrive_execution(arn)
    env.run(arn)
    result = env.result(arn)
    assert result.status == "SUCCEEDED"
    assert json.loads(result.output or "null") == list(range(N))
    assert attempts["A7"] == 1 and all(attempts[f"B{i}"] == 1 for i in range(N))
