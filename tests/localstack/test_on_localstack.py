"""The local stack against LocalStack: run only when ``LOCALSTACK_ENDPOINT`` is set.

    LOCALSTACK_ENDPOINT=http://localhost:4566 .venv/bin/pytest tests/localstack

SQS, S3 and STS are LocalStack's; DynamoDB is LocalStack's too unless
``LOCALSTACK_DYNAMODB_ENDPOINT`` points elsewhere (``make localstack`` points it at
DynamoDB Local: offline, LocalStack's DynamoDB cannot start). The API and the
stepper run in-process, as ``stepflow local --endpoint URL [--dynamodb-endpoint URL]``
runs them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest
from stepflow.local import LocalStack

ENDPOINT = os.environ.get("LOCALSTACK_ENDPOINT")
DYNAMODB_ENDPOINT = os.environ.get("LOCALSTACK_DYNAMODB_ENDPOINT") or None
pytestmark = pytest.mark.skipif(
    not ENDPOINT, reason="set LOCALSTACK_ENDPOINT (e.g. http://localhost:4566) to run these"
)
FN = "arn:aws:lambda:us-east-1:000000000000:function:"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    handlers = {"double": lambda payload: {"n": payload["n"] * 2}}
    with LocalStack(
        port=0, endpoint=ENDPOINT, handlers=handlers, dynamodb_endpoint=DYNAMODB_ENDPOINT
    ) as running:
        yield running


def test_a_workflow_with_a_task_and_a_map_succeeds(stack: LocalStack) -> None:
    sfn = stack.stepfunctions()
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemProcessor": {
                    "StartAt": "D",
                    "States": {"D": {"Type": "Task", "Resource": FN + "double", "End": True}},
                },
                "End": True,
            }
        },
    }
    name = f"localstack-{int(time.time())}"
    arn = sfn.create_state_machine(
        name=name, definition=json.dumps(definition), roleArn="arn:aws:iam::000000000000:role/x"
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, input='[{"n": 1}, {"n": 2}]')
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        if described["status"] != "RUNNING":
            break
        time.sleep(0.2)
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == [{"n": 2}, {"n": 4}]
