"""The API commits and enqueues; it never runs a task. Definitions are cached by exact ARN."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from stepflow.engine import RunTask
from stepflow.runtime import InMemoryLog
from stepflow.runtime.outcome import TaskOutcome
from stepflow.runtime.registry import DefinitionCache, InMemoryRegistry
from stepflow.testing.handlers import run_handler

from tests.api.conftest import FN, Api, make_api

CALLS: Counter[str] = Counter()


def counted(body: dict[str, Any]) -> TaskOutcome:
    CALLS[body["resource"]] += 1
    command = RunTask(body["task_id"], body["resource"], body["input"], body["state_name"])
    return run_handler({"double": lambda value: {"n": value["n"] * 2}}, command)


def test_start_execution_sends_the_task_and_runs_nothing() -> None:
    api = make_api(InMemoryLog(), InMemoryRegistry())
    api.service.stepper.invoker = counted
    CALLS.clear()
    definition = {
        "StartAt": "Double",
        "States": {"Double": {"Type": "Task", "Resource": FN + "double", "End": True}},
    }
    arn = api.machine("T", json.dumps(definition))
    # WHEN the API starts an execution whose first state is a Lambda task
    started = api("StartExecution", stateMachineArn=arn, input='{"n": 2}')
    # THEN it answered without running the task: the task is a message on the queue
    assert CALLS == {}
    assert [m.kind for m in api.bus.receive_batch(10)] == ["task"]
    # AND the stepper behind the queue runs it once
    drained(api)
    assert CALLS == {FN + "double": 1}
    described = api("DescribeExecution", executionArn=started["executionArn"])
    assert described["status"] == "SUCCEEDED" and json.loads(described["output"]) == {"n": 4}


def drained(api: Api) -> None:
    """Deliver every queued message; any failure (e.g. LookupError) fails the test."""
    api.bus.now += 1.0  # the peeked messages' visibility
    for _ in range(10_000):
        batch = api.bus.receive_batch(10)
        if not batch:
            return
        assert api.service.stepper.handle_batch(batch) == []
        for message in batch:
            api.bus.ack(message)
    raise AssertionError("the queue never drained")


def test_children_of_a_big_map_run_the_revision_the_parent_started_with() -> None:
    # GIVEN a Map over more items than run in the parent's partition (child executions)
    api = make_api(InMemoryLog(), InMemoryRegistry())
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemProcessor": {
                    "StartAt": "Double",
                    "States": {"Double": {"Type": "Task", "Resource": FN + "double", "End": True}},
                },
                "End": True,
            }
        },
    }
    arn = api.machine("Big", json.dumps(definition))
    started = api(
        "StartExecution", stateMachineArn=arn, input=json.dumps([{"n": i} for i in range(60)])
    )
    # WHEN the definition is updated while it runs
    other = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": "new", "End": True}}}
    api("UpdateStateMachine", stateMachineArn=arn, definition=json.dumps(other))
    drained(api)
    # THEN it succeeds with the old revision's results (no child looked up another ARN)
    described = api("DescribeExecution", executionArn=started["executionArn"])
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == [{"n": 2 * i} for i in range(60)]


def test_the_definition_cache_reads_each_exact_arn_once() -> None:
    registry = InMemoryRegistry()
    registry.put_definition(
        "sm:M:1", '{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}'
    )
    registry.put_definition(
        "sm:M:2", '{"StartAt": "Q", "States": {"Q": {"Type": "Pass", "End": true}}}'
    )
    cache = DefinitionCache(registry, size=1)
    assert cache("sm:M:1").root.start_at == "P"
    assert cache("sm:M:1") is cache("sm:M:1")
    assert cache.loads == 1
    assert cache("sm:M:2").root.start_at == "Q"  # evicts M:1 (size 1)
    assert cache("sm:M:1").root.start_at == "P"
    assert cache.loads == 3
    try:
        cache("sm:M")
    except LookupError:
        pass
    else:
        raise AssertionError("an ARN with no stored definition must raise LookupError")
