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
