"""Nested ``.sync:2`` executions on the path that ships: boto3 against ``stepflow local``.

The parent's Task starts the child through the stack's own API service in process
(no HTTP hop); the child's end comes back through the transition queue (SQS on
moto) as the parent task's result. Each test counts what must happen once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import stepflow
from stepflow.local import LocalStack
from stepflow.runtime import Message

from tests.e2e.waiting import wait_for

pytest.importorskip("moto")
ROLE = "arn:aws:iam::123456789012:role/NestedRole"
R = "arn:aws:states:::states:startExecution"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0) as running:
        yield running


def _machine(sfn: Any, name: str, definition: dict[str, Any]) -> str:
    created = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)
    return str(created["stateMachineArn"])


def _parent(child: str, pattern: str = ".sync:2") -> dict[str, Any]:
    return {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": R + pattern,
                "Parameters": {
                    "StateMachineArn": child,
                    "Input": {
                        "value.$": "$.value",
                        "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$": "$$.Execution.Id",
                    },
                },
                "ResultSelector": {"child.$": "$.Output", "status.$": "$.Status"},
                "End": True,
            }
        },
    }


def _children(sfn: Any, machine: str) -> list[dict[str, Any]]:
    return list(sfn.list_executions(stateMachineArn=machine)["executions"])


def test_sync2_returns_the_childs_output_and_the_child_is_listed(stack: LocalStack) -> None:
    sfn = stack.stepfunctions()
    child = _machine(
        sfn,
        "nested-child",
        {
            "StartAt": "Double",
            "States": {
                "Double": {
                    "Type": "Pass",
                    "Parameters": {"doubled.$": "States.MathAdd($.value, $.value)"},
                    "End": True,
                }
            },
        },
    )
    parent = _machine(sfn, "nested-parent", _parent(child))
    started = sfn.start_execution(stateMachineArn=parent, input=json.dumps({"value": 21}))
    done = wait_for(sfn, started["executionArn"])
    assert done["status"] == "SUCCEEDED", done
    assert json.loads(done["output"]) == {"child": {"doubled": 42}, "status": "SUCCEEDED"}
    (kid,) = _children(sfn, child)
    described = sfn.describe_execution(executionArn=kid["executionArn"])
    assert described["status"] == "SUCCEEDED"
    child_input = json.loads(described["input"])
    assert child_input["AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"] == started["executionArn"]
    history = sfn.get_execution_history(executionArn=started["executionArn"])["events"]
    kinds = [e["type"] for e in history]
    assert kinds.count("TaskSubmitted") == 1 and kinds.count("TaskSucceeded") == 1


def test_a_failing_child_fails_the_parent_as_aws_reports_it(stack: LocalStack) -> None:
    sfn = stack.stepfunctions()
    child = _machine(
        sfn,
        "nested-fails",
        {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Bad", "Cause": "no"}}},
    )
    parent = _machine(sfn, "nested-fails-parent", _parent(child))
    started = sfn.start_execution(stateMachineArn=parent, input=json.dumps({"value": 1}))
    done = wait_for(sfn, started["executionArn"])
    assert (done["status"], done["error"]) == ("FAILED", "States.TaskFailed")
    cause = json.loads(done["cause"])
    assert (cause["Status"], cause["Error"], cause["Cause"]) == ("FAILED", "Bad", "no")
    assert len(_children(sfn, child)) == 1


def test_stopping_the_parent_stops_the_child(stack: LocalStack) -> None:
    sfn = stack.stepfunctions()
    child = _machine(
        sfn,
        "nested-waits",
        {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 600, "End": True}}},
    )
    parent = _machine(sfn, "nested-waits-parent", _parent(child, ".sync"))
    started = sfn.start_execution(stateMachineArn=parent, input=json.dumps({"value": 1}))
    kids = _wait_children(sfn, child)
    sfn.stop_execution(executionArn=started["executionArn"])
    assert wait_for(sfn, started["executionArn"])["status"] == "ABORTED"
    stopped = wait_for(sfn, kids[0]["executionArn"])
    assert stopped["status"] == "ABORTED"
    events = sfn.get_execution_history(executionArn=kids[0]["executionArn"])["events"]
    assert [e["type"] for e in events].count("ExecutionAborted") == 1


def test_the_childs_end_delivered_twice_is_applied_once(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert stack.wiring is not None
    bus = stack.wiring.bus
    send = bus.send
    duplicated: list[str] = []

    def twice(message: Message, delay: int = 0) -> None:
        send(message, delay)
        if "#caller#" in message.id:  # the child's end, to its caller: sent again
            duplicated.append(message.id)
            send(message, delay)

    monkeypatch.setattr(bus, "send", twice)
    sfn = stack.stepfunctions()
    child = _machine(
        sfn, "nested-dup", {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    )
    parent = _machine(sfn, "nested-dup-parent", _parent(child))
    started = sfn.start_execution(stateMachineArn=parent, input=json.dumps({"value": 3}))
    done = wait_for(sfn, started["executionArn"])
    assert done["status"] == "SUCCEEDED"
    # One message (the child's end) was delivered at least twice: the test's copy, and any
    # re-send of the outbox (a repair) on top; whatever the count, it is applied once.
    assert len(set(duplicated)) == 1 and len(duplicated) >= 1
    history = sfn.get_execution_history(executionArn=started["executionArn"])["events"]
    kinds = [e["type"] for e in history]
    assert kinds.count("TaskSucceeded") == 1
    assert kinds.count("TaskStateExited") == 1
    assert kinds.count("ExecutionSucceeded") == 1


def _wait_children(sfn: Any, machine: str) -> list[dict[str, Any]]:
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = _children(sfn, machine)
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no execution of {machine} started")


def test_an_express_sync_execution_starts_a_standard_child(stack: LocalStack) -> None:
    # StepFlow's client: boto3's own prefixes StartSyncExecution's host with "sync-".
    sfn = stepflow.client(
        stack.url, region="us-east-1", aws_access_key_id="local", aws_secret_access_key="local"
    )
    child = _machine(
        sfn, "nested-from-express", {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    )
    flow = {
        "StartAt": "Start",
        "States": {
            "Start": {
                "Type": "Task",
                "Resource": R,
                "Parameters": {"StateMachineArn": child, "Name": "from-express"},
                "End": True,
            }
        },
    }
    created = sfn.create_state_machine(
        name="nested-express", definition=json.dumps(flow), roleArn=ROLE, type="EXPRESS"
    )
    answer = sfn.start_sync_execution(stateMachineArn=created["stateMachineArn"], input="{}")
    assert answer["status"] == "SUCCEEDED", answer
    output = json.loads(answer["output"])
    assert output["ExecutionArn"].endswith(":execution:nested-from-express:from-express")
    assert wait_for(sfn, output["ExecutionArn"])["status"] == "SUCCEEDED"
    assert len(_children(sfn, child)) == 1
