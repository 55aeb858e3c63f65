"""What one StartExecution costs the local stack's DynamoDB, counted on moto's server.

GIVEN the local stack (in-process moto, the real API handler and DynamoDB log),
WHEN boto3 starts executions of a flow that finishes inside StartExecution,
THEN each start makes exactly two reads (the state machine, read once for its
revision and its role; the execution name, for idempotency), two one-item queries
(the create's look for an expired execution's leftovers under the name, as its head
carries its events: stepflow.aws.log_lifecycle) and two puts (the listing entry, then
the head), and nothing else: no update to clear an outbox that is empty. A
DescribeExecution is one read. A start by version ARN reads the version once.
"""

from __future__ import annotations

import importlib
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.local import LocalStack

ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"
FLOW = {
    "StartAt": "First",
    "States": {
        "First": {"Type": "Pass", "Result": {"n": 1}, "ResultPath": "$.first", "Next": "Then"},
        "Then": {"Type": "Pass", "Parameters": {"n.$": "$.first.n"}, "Next": "Done"},
        "Done": {"Type": "Succeed"},
    },
}
STARTS = 5


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0, handlers={}, pollers=1, runners=1) as running:
        yield running


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """DynamoDB requests moto's server answers, by operation."""
    seen: Counter[str] = Counter()
    handler = importlib.import_module("moto.dynamodb.responses").DynamoHandler
    original = handler.call_action

    def call_action(self: Any) -> Any:
        seen[self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]] += 1
        return original(self)

    monkeypatch.setattr(handler, "call_action", call_action)
    return seen


def test_a_start_that_finishes_inline_reads_twice_queries_twice_and_puts_twice(
    stack: LocalStack, requests: Counter[str]
) -> None:
    sfn = stack.stepfunctions()
    machine = sfn.create_state_machine(
        name=f"inline-{uuid.uuid4().hex[:8]}", definition=json.dumps(FLOW), roleArn=ROLE
    )["stateMachineArn"]
    first = sfn.start_execution(stateMachineArn=machine, name="warm", input="{}")
    assert sfn.describe_execution(executionArn=first["executionArn"])["status"] == "SUCCEEDED"
    requests.clear()  # the definition is read once per revision, then kept
    arns = [
        sfn.start_execution(stateMachineArn=machine, name=f"run-{i}", input='{"i": 1}')[
            "executionArn"
        ]
        for i in range(STARTS)
    ]
    # (a transaction of the head, its events and the listing entry before issue 18's
    # round 9: 3 items billed twice, 6 write units or more; now 2 puts, 2-4 units)
    assert dict(requests) == {"GetItem": 2 * STARTS, "Query": 2 * STARTS, "PutItem": 2 * STARTS}
    requests.clear()
    described = [sfn.describe_execution(executionArn=arn) for arn in arns]
    assert [d["status"] for d in described] == ["SUCCEEDED"] * STARTS
    assert json.loads(described[0]["output"]) == {"n": 1}
    assert dict(requests) == {"GetItem": STARTS}


def test_a_start_by_version_reads_the_version_once(
    stack: LocalStack, requests: Counter[str]
) -> None:
    sfn = stack.stepfunctions()
    created = sfn.create_state_machine(
        name=f"versioned-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(FLOW),
        roleArn=ROLE,
        publish=True,
    )
    version = created["stateMachineVersionArn"]
    sfn.start_execution(stateMachineArn=version, name="warm", input="{}")
    requests.clear()
    run = sfn.start_execution(stateMachineArn=version, name="run", input="{}")
    assert dict(requests) == {"GetItem": 2, "Query": 2, "PutItem": 2}
    described = sfn.describe_execution(executionArn=run["executionArn"])
    assert described["status"] == "SUCCEEDED"
    assert described["stateMachineVersionArn"] == version
