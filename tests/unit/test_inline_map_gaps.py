"""Two gaps of the inline Map, proved on both of its paths through the same driver.

An inline Map of at most ``child_limit`` items runs its iterations in the parent
(a fanout); past it, in a map run. Each test runs both (``child_limit`` None and 40
on 41 items, or 40 on 5 items and on 41) and counts what must happen once.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from stepflow.testing import WorkflowEnvironment

FN = "arn:aws:lambda:us-east-1:123456789012:function:fn"
CALLBACK = "arn:aws:states:::lambda:invoke.waitForTaskToken"
N = 41


class Boom(Exception):
    """A handler's failure (its error name is the class name)."""


def _map(**fields: Any) -> dict[str, Any]:
    return {
        "Type": "Map",
        "ItemsPath": "$.items",
        "ItemSelector": {"i.$": "$$.Map.Item.Index"},
        "ItemProcessor": {
            "StartAt": "T",
            "States": {"T": {"Type": "Task", "Resource": FN, "End": True}},
        },
        **fields,
    }


def _events(env: WorkflowEnvironment, arn: str) -> list[tuple[str, Any]]:
    found = []
    for event in env.history(arn):
        if event["type"].startswith(("Map", "Execution", "Parallel")):
            details = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
            index = details.get("index") if isinstance(details, dict) else None
            found.append((event["type"], index))
    return found


# --- 2. a redrive of an inline Map runs only its unsuccessful iterations again ---------------


@pytest.mark.parametrize("limit", [None, 40])
def test_a_redrive_runs_only_the_iterations_that_did_not_succeed(limit: int | None) -> None:
    calls: Counter[int] = Counter()
    fail = {7, 20}

    def fn(payload: dict[str, Any]) -> Any:
        calls[payload["i"]] += 1
        if payload["i"] in fail:
            raise Boom(f"item {payload['i']}")
        return payload["i"]

    definition = {
        "StartAt": "M",
        "States": {"M": _map(MaxConcurrency=5, ToleratedFailureCount=1, End=True)},
    }
    env = WorkflowEnvironment(handlers={"fn": fn}, child_limit=limit, start_time=0.0)
    arn = env.start(definition, {"items": list(range(N))}, name="x")
    env.run(arn)
    result = env.result(arn)
    assert (result.status, result.error) == ("FAILED", "States.ExceedToleratedFailureThreshold")
    first = _events(env, arn)
    succeeded = {i for t, i in first if t == "MapIterationSucceeded"}
    assert 7 not in succeeded and 20 not in succeeded and len(succeeded) >= 7
    fail.clear()
    env.stepper.redrive_execution(arn)
    env.run(arn)
    result = env.result(arn)
    assert result.status == "SUCCEEDED"
    assert json.loads(result.output or "null") == list(range(N))
    # once in all for each item that succeeded before the redrive; the rest once more
    assert all(calls[i] == 1 for i in succeeded)
    assert all(calls[i] >= 1 for i in range(N)) and calls[7] == calls[20] == 2
    events = _events(env, arn)
    redriven = events[len(first) :]
    assert redriven[0] == ("ExecutionRedriven", None)
    started = sorted(i for t, i in redriven if t == "MapIterationStarted")
    assert started == sorted(set(range(N)) - succeeded)
    assert Counter(t for t, _ in events)["MapIterationSucceeded"] == N


def test_a_retry_of_the_map_still_runs_every_iteration_again() -> None:
    # Only the redrive keeps iterations: a Retry of the Map state runs it all again.
    calls: Counter[int] = Counter()

    def fn(payload: dict[str, Any]) -> Any:
        calls[payload["i"]] += 1
        if payload["i"] == 3 and calls[3] == 1:
            raise Boom("once")
        return payload["i"]

    retry = [{"ErrorEquals": ["Boom"], "IntervalSeconds": 1}]
    definition = {"StartAt": "M", "States": {"M": _map(Retry=retry, End=True)}}
    env = WorkflowEnvironment(handlers={"fn": fn}, start_time=0.0)
    arn = env.start(definition, {"items": list(range(5))}, name="x")
    env.run(arn)
    assert env.result(arn).status == "SUCCEEDED"
    assert calls[3] == 2 and sum(calls.values()) > 6


# --- 1. an abandoned inline Map leaves every iteration event in the parent's history -------


def _callback_map(**fields: Any) -> dict[str, Any]:
    task = {
        "Type": "Task",
        "Resource": CALLBACK,
        "Parameters": {"FunctionName": "cb", "Payload": {"t.$": "$$.Task.Token"}},
        "End": True,
    }
    return {
        "Type": "Map",
        "ItemsPath": "$.items",
        "MaxConcurrency": 10,
        "ItemProcessor": {"StartAt": "T", "States": {"T": task}},
        **fields,
    }


def _iteration_events(events: list[tuple[str, Any]]) -> Counter[tuple[str, Any]]:
    return Counter(e for e in events if e[0].startswith("MapIteration"))


@pytest.mark.parametrize("how", ["stop", "timeout"])
def test_an_ended_execution_records_its_maps_iterations_before_its_last_event(how: str) -> None:
    seen = {}
    for limit in (None, 40):
        env = WorkflowEnvironment(child_limit=limit, start_time=0.0)
        definition: dict[str, Any] = {"StartAt": "M", "States": {"M": _callback_map(End=True)}}
        if how == "timeout":
            definition["TimeoutSeconds"] = 60
        arn = env.start(definition, {"items": list(range(N))}, name="x")
        env.run(arn)
        for task in env.open_tasks(arn)[:3]:
            env.complete(task.token, {})
        if how == "stop":
            env.stop(arn)
        else:
            env.advance(120)
            env.run(arn)
        assert not env.open_tasks()
        events = _events(env, arn)
        ending = "ExecutionAborted" if how == "stop" else "ExecutionTimedOut"
        assert events[-1] == (ending, None)  # nothing after the execution's end
        seen[limit] = _iteration_events(events)
    assert seen[40] == seen[None]
    # 10 started, 3 succeeded and 3 more started; no Aborted when the execution ends
    assert Counter(t for t, _ in seen[40].elements()) == {
        "MapIterationStarted": 13,
        "MapIterationSucceeded": 3,
    }


def test_a_map_abandoned_by_a_failed_parallel_sibling_records_its_aborted_iterations() -> None:
    seen = {}
    for limit in (None, 40):
        definition = {
            "StartAt": "P",
            "States": {
                "P": {
                    "Type": "Parallel",
                    "Branches": [
                        {"StartAt": "M", "States": {"M": _callback_map(End=True)}},
                        {
                            "StartAt": "W",
                            "States": {
                                "W": {"Type": "Wait", "Seconds": 10, "Next": "F"},
                                "F": {"Type": "Fail", "Error": "Sibling"},
                            },
                        },
                    ],
                    "End": True,
                }
            },
        }
        env = WorkflowEnvironment(child_limit=limit, start_time=0.0)
        arn = env.start(definition, {"items": list(range(N))}, name="x")
        env.run(arn)
        for task in env.open_tasks(arn)[:4]:
            env.complete(task.token, {})
        env.advance(20)
        env.run(arn)
        result = env.result(arn)
        assert (result.status, result.error) == ("FAILED", "Sibling")
        assert not env.open_tasks()
        events = _events(env, arn)
        # the Map's iterations come before the Parallel fails
        last = max(i for i, (t, _) in enumerate(events) if t.startswith("MapIteration"))
        assert last < events.index(("ParallelStateFailed", None))
        seen[limit] = _iteration_events(events)
    assert seen[40] == seen[None]
    # 10 + 4 started, 4 succeeded, the 10 running aborted, each once
    aborted = sorted(i for t, i in seen[40].elements() if t == "MapIterationAborted")
    assert len(aborted) == 10 and len(set(aborted)) == 10
    assert sum(1 for t, _ in seen[40].elements() if t == "MapIterationStarted") == 14


def test_a_map_failed_by_its_iteration_records_the_same_events_on_both_paths() -> None:
    seen = {}
    for limit in (None, 40):
        definition = {"StartAt": "M", "States": {"M": _callback_map(End=True)}}
        env = WorkflowEnvironment(child_limit=limit, start_time=0.0)
        arn = env.start(definition, {"items": list(range(N))}, name="x")
        env.run(arn)
        tasks = env.open_tasks(arn)
        for task in tasks[:3]:
            env.complete(task.token, {})
        env.fail(tasks[3].token, "Boom", "one item")
        env.run(arn)
        result = env.result(arn)
        assert (result.status, result.error) == ("FAILED", "Boom")
        assert not env.open_tasks()
        seen[limit] = Counter(t for t, _ in _iteration_events(_events(env, arn)).elements())
    assert seen[40] == seen[None]
    assert seen[40] == {
        "MapIterationStarted": 13,
        "MapIterationSucceeded": 3,
        "MapIterationFailed": 1,
        "MapIterationAborted": 9,
    }


@pytest.mark.parametrize("limit", [None, 40])
def test_a_redrive_after_a_stop_answers_each_iteration_once_in_all(limit: int | None) -> None:
    env = WorkflowEnvironment(child_limit=limit, start_time=0.0)
    definition = {"StartAt": "M", "States": {"M": _callback_map(End=True)}}
    arn = env.start(definition, {"items": list(range(N))}, name="x")
    env.run(arn)
    for task in env.open_tasks(arn)[:3]:
        env.complete(task.token, {})
    env.stop(arn)
    env.stepper.redrive_execution(arn)
    env.run(arn)
    answered, opened = 3, Counter[str]()
    while env.describe(arn)["status"] == "RUNNING":
        tasks = env.open_tasks(arn)
        assert tasks, "the redriven Map waits on nothing"
        for task in tasks:
            opened[task.token] += 1
            env.complete(task.token, {})
            answered += 1
        env.run(arn)
    assert env.describe(arn)["status"] == "SUCCEEDED"
    assert answered == N and all(n == 1 for n in opened.values())
    succeeded = [i for t, i in _events(env, arn) if t == "MapIterationSucceeded"]
    assert sorted(succeeded) == list(range(N))  # each once, across both attempts


def test_a_map_entered_again_after_the_redrive_runs_all_its_iterations() -> None:
    # The redrive keeps the iterations of the entry it redrives only: the Map caught and
    # entered again (the same decision, the same items) runs every iteration again.
    iteration = {
        "StartAt": "C",
        "States": {
            "C": {
                "Type": "Choice",
                "Choices": [
                    {
                        "And": [
                            {"Variable": "$.i", "NumericEquals": 2},
                            {"Variable": "$$.Execution.RedriveCount", "NumericEquals": 0},
                        ],
                        "Next": "Hard",
                    },
                    {
                        "And": [
                            {"Variable": "$.i", "NumericEquals": 2},
                            {"Variable": "$.attempt", "NumericEquals": 0},
                        ],
                        "Next": "Soft",
                    },
                ],
                "Default": "Ok",
            },
            "Hard": {"Type": "Fail", "Error": "Hard"},
            "Soft": {"Type": "Fail", "Error": "Soft"},
            "Ok": {"Type": "Pass", "End": True},
        },
    }
    definition = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": 1,
                "ItemSelector": {"i.$": "$$.Map.Item.Value", "attempt.$": "$.attempt"},
                "ItemProcessor": iteration,
                "Catch": [{"ErrorEquals": ["Soft"], "ResultPath": None, "Next": "Again"}],
                "End": True,
            },
            "Again": {"Type": "Pass", "Result": 1, "ResultPath": "$.attempt", "Next": "M"},
        },
    }
    env = WorkflowEnvironment(start_time=0.0)
    arn = env.start(definition, {"items": [0, 1, 2, 3], "attempt": 0}, name="x")
    env.run(arn)
    assert env.result(arn).error == "Hard"
    env.stepper.redrive_execution(arn)
    env.run(arn)
    assert env.result(arn).status == "SUCCEEDED"
    started = Counter(i for t, i in _events(env, arn) if t == "MapIterationStarted")
    # 0 and 1: the first attempt and the entry after the catch (kept by the redrive only)
    assert started == {0: 2, 1: 2, 2: 3, 3: 1}


def test_a_redrive_of_a_parallel_runs_only_the_branches_that_did_not_succeed() -> None:
    # AWS: "For workflows that include an Inline Map or Parallel state, RedriveExecution
    # ... redrives only the iterations and branches that failed or aborted."
    def branch(b: int) -> dict[str, Any]:
        payload = {"b": b, "t.$": "$$.Task.Token"}
        task = {
            "Type": "Task",
            "Resource": CALLBACK,
            "Parameters": {"FunctionName": "cb", "Payload": payload},
            "End": True,
        }
        return {"StartAt": f"T{b}", "States": {f"T{b}": task}}

    definition = {
        "StartAt": "P",
        "States": {
            "P": {"Type": "Parallel", "Branches": [branch(b) for b in range(3)], "End": True}
        },
    }
    env = WorkflowEnvironment(start_time=0.0)
    arn = env.start(definition, {}, name="x")
    env.run(arn)

    def open_branches() -> dict[int, str]:
        return {int(t.state_name[1:]): t.token for t in env.open_tasks(arn)}

    first = open_branches()
    assert set(first) == {0, 1, 2}
    env.complete(first[0], {"b": 0, "attempt": 1})
    env.fail(first[1], "Boom", "branch 1")
    env.run(arn)
    assert env.result(arn).error == "Boom" and not env.open_tasks()
    env.stepper.redrive_execution(arn)
    env.run(arn)
    again = open_branches()
    assert set(again) == {1, 2}  # branch 0 succeeded: not run again
    for b, token in again.items():
        env.complete(token, {"b": b, "attempt": 2})
    env.run(arn)
    result = env.result(arn)
    assert result.status == "SUCCEEDED"
    assert json.loads(result.output or "null") == [
        {"b": 0, "attempt": 1},
        {"b": 1, "attempt": 2},
        {"b": 2, "attempt": 2},
    ]
