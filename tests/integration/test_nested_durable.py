"""Nested executions on the durable runtime: the DynamoDB log on moto, the stepper Lambda.

Every message (the parent's task, the child's deferred Start, the child's end sent to
its caller, the Stop of a cancelled child) is delivered as an SQS event to the real
stepper Lambda handler (:func:`stepflow.testing.durable.moto_environment`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.runtime import Message
from stepflow.testing import WorkflowEnvironment, open_environment

pytest.importorskip("moto")
R = "arn:aws:states:::states:startExecution"
CHILD = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"x": 1}, "End": True}}}
WAITS = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 100, "End": True}}}
FAILS = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "E", "Cause": "C"}}}


@pytest.fixture
def env() -> Iterator[WorkflowEnvironment]:
    with open_environment("moto") as made:
        yield made


def parent(child: str, pattern: str = ".sync:2") -> dict[str, Any]:
    task = {"Type": "Task", "Resource": R + pattern, "Parameters": {"StateMachineArn": child}}
    return {"StartAt": "T", "States": {"T": {**task, "End": True}}}


def children(env: WorkflowEnvironment, machine: str) -> list[dict[str, Any]]:
    return list(env.api.call("ListExecutions", {"stateMachineArn": machine})["executions"])


def test_sync2_child_output_reaches_the_parent_once(env: WorkflowEnvironment) -> None:
    duplicated: list[str] = []
    send = env.bus.send

    def twice(message: Message, delay: int = 0) -> None:
        send(message, delay)
        if "#caller#" in message.id:
            duplicated.append(message.id)
            send(message, delay)

    env.bus.send = twice  # type: ignore[method-assign]
    child = env.register(CHILD, "Child")
    arn = env.start(env.register(parent(child)), {})
    env.run(arn)
    result = env.result(arn)
    assert result.status == "SUCCEEDED"
    assert json.loads(result.output or "null")["Output"] == {"x": 1}
    assert len(duplicated) == 1
    kinds = [e["type"] for e in result.history]
    assert kinds.count("TaskSubmitted") == kinds.count("TaskSucceeded") == 1
    assert len(children(env, child)) == 1


def test_failed_child_and_stopped_parent(env: WorkflowEnvironment) -> None:
    fails = env.register(FAILS, "Fails")
    arn = env.start(env.register(parent(fails, ".sync"), "P1"), {})
    env.run(arn)
    result = env.result(arn)
    assert result.error == "States.TaskFailed"
    assert json.loads(result.cause or "null")["Error"] == "E"

    waits = env.register(WAITS, "Waits")
    arn = env.start(env.register(parent(waits), "P2"), {})
    env.run_until_idle()
    (kid,) = children(env, waits)
    env.stop(arn)
    assert env.result(kid["executionArn"]).status == "ABORTED"
    assert env.result(arn).status == "ABORTED"
