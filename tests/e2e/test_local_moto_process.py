"""The local stack with moto's server in a child process (what ``stepflow local`` runs).

GIVEN ``LocalStack(moto_process=True)``, WHEN boto3 runs a flow that finishes
inside StartExecution and one whose Lambda task goes through the queues, the
runners and the stepper pollers, THEN both succeed; every DynamoDB request is
answered by the child, none by a moto in this process; the stack's log is the
real DynamoDB adapter (``stepflow.aws.dynamodb_log``), which commits each
start once; and when the stack stops the child ends. A child that cannot
serve (its port taken) fails the start and is not left behind.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import time
from collections import Counter
from typing import Any

import pytest
from stepflow.aws.dynamodb_log import DynamoDBLog
from stepflow.local import LocalStack
from stepflow.local.moto_process import MotoProcess, MotoProcessError

ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"
LAMBDA = "arn:aws:lambda:us-east-1:000000000000:function:double"
INLINE = {
    "StartAt": "First",
    "States": {
        "First": {"Type": "Pass", "Result": {"n": 1}, "ResultPath": "$.first", "Next": "Then"},
        "Then": {"Type": "Pass", "Parameters": {"n.$": "$.first.n"}, "Next": "Done"},
        "Done": {"Type": "Succeed"},
    },
}
QUEUED = {
    "StartAt": "Work",
    "States": {
        "Work": {"Type": "Task", "Resource": LAMBDA, "Next": "Then"},
        "Then": {"Type": "Pass", "Parameters": {"n.$": "$.n"}, "Next": "Done"},
        "Done": {"Type": "Succeed"},
    },
}
RUNS = 3


def test_the_stack_runs_with_moto_in_a_child_process(monkeypatch: pytest.MonkeyPatch) -> None:
    here: Counter[str] = Counter()
    handler = importlib.import_module("moto.dynamodb.responses").DynamoHandler
    original_call = handler.call_action

    def call_action(self: Any) -> Any:
        here["dynamodb"] += 1
        return original_call(self)

    monkeypatch.setattr(handler, "call_action", call_action)
    creates: Counter[str] = Counter()
    original_create = DynamoDBLog.create

    def create(self: DynamoDBLog, record: Any, events: Any) -> Any:
        creates[record.execution_arn] += 1
        return original_create(self, record, events)

    monkeypatch.setattr(DynamoDBLog, "create", create)
    calls: list[Any] = []

    def double(payload: Any) -> Any:
        calls.append(payload)
        return {"n": payload["n"] * 2}

    with LocalStack(port=0, handlers={"double": double}, moto_process=True) as stack:
        child = stack._moto
        assert child is not None and child.pid is not None and child.pid != os.getpid()
        assert stack.wiring is not None and isinstance(stack.wiring.log, DynamoDBLog)
        sfn = stack.stepfunctions()
        outputs: dict[str, list[Any]] = {}
        for name, flow in (("inline", INLINE), ("queued", QUEUED)):
            machine = sfn.create_state_machine(
                name=name, definition=json.dumps(flow), roleArn=ROLE
            )["stateMachineArn"]
            arns = [
                sfn.start_execution(
                    stateMachineArn=machine, name=f"{name}-{i}", input=json.dumps({"n": i})
                )["executionArn"]
                for i in range(RUNS)
            ]
            outputs[name] = [_output(sfn, arn) for arn in arns]
        pid = child.pid
    assert outputs == {"inline": [{"n": 1}] * RUNS, "queued": [{"n": 2 * i} for i in range(RUNS)]}
    assert sorted(c["n"] for c in calls) == list(range(RUNS))
    assert sorted(creates.values()) == [1] * (2 * RUNS)
    assert here["dynamodb"] == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped


def _output(sfn: Any, arn: str) -> Any:
    """The execution's output once it succeeded (waits up to 30 s)."""
    deadline = time.monotonic() + 30
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{arn} still running"
        time.sleep(0.05)
    assert described["status"] == "SUCCEEDED", described
    return json.loads(described["output"])


def test_a_moto_process_that_cannot_serve_fails_the_start_and_leaves_nothing() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        moto = MotoProcess("127.0.0.1", port)
        with pytest.raises(MotoProcessError, match="did not start"):
            moto.start()
    assert moto.pid is None
