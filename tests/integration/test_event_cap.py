"""The event cap (``Limits.max_events_per_execution``): a runaway loop fails with States.Runtime.

The same rule on both backends of the durable runtime: the in-memory log, and
the DynamoDB log on moto with every message through the real stepper Lambda
handler. A Map run as child executions counts each child's history apart.
"""

from __future__ import annotations

from typing import Any

import pytest
from stepflow.limits import Limits
from stepflow.testing import open_environment

CAP = 50

LOOP = {
    "StartAt": "Spin",
    "States": {
        "Spin": {"Type": "Pass", "Next": "Again"},
        "Again": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.stop", "IsPresent": True, "Next": "Done"}],
            "Default": "Spin",
        },
        "Done": {"Type": "Succeed"},
    },
}


def _chain(length: int) -> dict[str, Any]:
    states: dict[str, Any] = {
        f"S{i}": {"Type": "Pass", "Next": f"S{i + 1}"} for i in range(length - 1)
    }
    states[f"S{length - 1}"] = {"Type": "Pass", "End": True}
    return {"StartAt": "S0", "States": states}


MAP = {
    "StartAt": "Each",
    "States": {
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": _chain(8),
            "End": True,
        }
    },
}


@pytest.mark.parametrize("backend", ["memory", "moto"])
def test_a_runaway_loop_fails_with_states_runtime_at_the_cap(backend: str) -> None:
    # GIVEN a Pass/Choice loop that never ends, and a cap of 50 events
    with open_environment(backend, limits=Limits(max_events_per_execution=CAP)) as env:
        # WHEN it runs
        arn = env.start(env.register(LOOP), {})
        env.run(arn)
        # THEN it failed with States.Runtime, naming the limit, its history exactly 50 events
        result = env.result(arn)
        history = env.history(arn)
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert result.cause is not None and "max_events_per_execution" in result.cause
    assert len(history) == CAP
    assert [e["id"] for e in history] == list(range(1, CAP + 1))
    assert history[-1]["type"] == "ExecutionFailed"
    assert sum(e["type"] == "ExecutionFailed" for e in history) == 1


@pytest.mark.parametrize("backend", ["memory", "moto"])
def test_an_execution_just_under_the_cap_is_untouched(backend: str) -> None:
    # GIVEN a chain of 23 Pass states: 2 + 2*23 = 48 events, under a cap of 50
    with open_environment(backend, limits=Limits(max_events_per_execution=CAP)) as env:
        arn = env.start(env.register(_chain(23)), {})
        env.run(arn)
        result, history = env.result(arn), env.history(arn)
    # THEN it succeeds as without a cap
    assert result.status == "SUCCEEDED"
    assert len(history) == 48


def _failing(length: int) -> dict[str, Any]:
    definition = _chain(length)
    definition["States"][f"S{length - 1}"] = {"Type": "Pass", "Next": "F"}
    definition["States"]["F"] = {"Type": "Fail", "Error": "Mine"}
    return definition


@pytest.mark.parametrize("backend", ["memory", "moto"])
@pytest.mark.parametrize(
    ("definition", "events", "outcome"),
    [(_chain(24), 50, ("SUCCEEDED", None)), (_failing(23), 49, ("FAILED", "Mine"))],
    ids=["succeeds", "fails"],
)
def test_an_execution_ending_exactly_at_the_cap_keeps_its_own_outcome(
    backend: str, definition: dict[str, Any], events: int, outcome: tuple[str, str | None]
) -> None:
    # review: the event numbered max_events was refused even when it was the execution's
    # last one, so a history of exactly the cap ended in States.Runtime, not its outcome
    with open_environment(backend, limits=Limits(max_events_per_execution=events)) as env:
        # GIVEN an execution whose natural history is exactly the cap
        arn = env.start(env.register(definition), {})
        env.run(arn)
        result, history = env.result(arn), env.history(arn)
    # THEN it ends as it would without a cap
    assert (result.status, result.error) == outcome
    assert len(history) == events


def test_a_child_execution_map_counts_each_child_apart() -> None:
    # GIVEN a Map over 4 items of an 8-state chain (about 20 events an item): inline, the
    # parent's history holds every iteration; as child executions (child_limit=2), each
    # child has its own history, capped on its own
    items = {"items": [1, 2, 3, 4]}
    limits = Limits(max_events_per_execution=CAP)
    with open_environment("memory", limits=limits, child_limit=None) as env:
        inline = env.start(env.register(MAP), items)
        env.run(inline)
        inline_result = env.result(inline)
    with open_environment("memory", limits=limits, child_limit=2) as env:
        split = env.start(env.register(MAP), items)
        env.run(split)
        split_result, split_history = env.result(split), env.history(split)
    # THEN inline, the parent passes the cap and fails; split, every history stays under it
    assert (inline_result.status, inline_result.error) == ("FAILED", "States.Runtime")
    assert split_result.status == "SUCCEEDED", split_result
    assert split_result.output == "[1,2,3,4]"
    assert len(split_history) < CAP
