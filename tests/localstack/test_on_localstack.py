"""The local stack against LocalStack: run only when ``LOCALSTACK_ENDPOINT`` is set.

    LOCALSTACK_ENDPOINT=http://localhost:4566 .venv/bin/pytest tests/localstack

SQS, S3 and STS are LocalStack's; DynamoDB is LocalStack's too unless
``LOCALSTACK_DYNAMODB_ENDPOINT`` points elsewhere (``make localstack`` points it at
DynamoDB Local: offline, LocalStack's DynamoDB cannot start). The API and the
stepper run in-process, as ``stepflow local --endpoint URL [--dynamodb-endpoint URL]``
runs them.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.aws.sqs_task_queue import SQSTaskQueue
from stepflow.aws.topology import PAYLOAD_PREFIX
from stepflow.local import LocalStack
from stepflow.local.stack import BUCKET
from stepflow.runtime.task_queue import Lease

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


def test_a_task_queue_redelivers_after_its_visibility_timeout(stack: LocalStack) -> None:
    queues = SQSTaskQueue(client=stack.client("sqs"), prefix=f"stepflow-tq-ls{int(time.time())}-")
    queues.create("work", {"test": "redelivery"})
    queues.send("work", {"n": 1})
    first = queues.receive("work", lease_seconds=1, wait_seconds=5)
    assert first is not None and first.body == {"n": 1} and first.receive_count == 1
    again = _receive_within(queues, 30)
    assert again.body == {"n": 1} and again.receive_count == 2
    queues.extend("work", again.receipt, 60)
    time.sleep(2)  # past the 1 s lease it was received with: the extension holds it
    assert queues.receive("work", lease_seconds=1) is None
    queues.ack("work", again.receipt)
    queues.extend("work", again.receipt, 0)  # a stale receipt is ignored, as on AWS
    assert queues.receive("work", lease_seconds=1, wait_seconds=2) is None


def _receive_within(queues: SQSTaskQueue, seconds: float) -> Lease:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        lease = queues.receive("work", lease_seconds=1, wait_seconds=1)
        if lease is not None:
            return lease
    raise AssertionError(f"the message was not redelivered within {seconds} s")


def test_a_large_input_is_offloaded_to_the_payload_bucket(stack: LocalStack) -> None:
    s3 = stack.client("s3")
    before = _payload_keys(s3)
    sfn = stack.stepfunctions()
    definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    arn = sfn.create_state_machine(
        name=f"localstack-large-{int(time.time())}",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::000000000000:role/x",
    )["stateMachineArn"]
    # Incompressible (the log zlib-compresses documents), under the 256 KiB input limit.
    document = {"blob": base64.b64encode(os.urandom(187_500)).decode()}
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(document))
    described = _wait(sfn, execution["executionArn"])
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == document
    assert _payload_keys(s3) - before, "nothing was offloaded to S3"


def _payload_keys(s3: Any) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PAYLOAD_PREFIX)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def _wait(sfn: Any, execution_arn: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            return described
        time.sleep(0.2)
