"""API fuzzing: every operation of botocore's model, through the API Lambda's handler.

GIVEN a service with a state machine, an execution, an activity and a task
token to aim at, WHEN Hypothesis sends requests built from botocore's input
shapes (valid-ish and hostile members, missing required ones, bodies that
are not JSON) as API Gateway proxy events to the real Lambda handler, THEN
no answer is a 5xx, every 4xx has AWS's ``{"__type", "message"}`` shape, and
no request takes longer than :data:`TIMEOUT` (a hang fails the test).

300 examples in the suite; ``HYPOTHESIS_PROFILE=long`` (``bench/fuzz_api.py``)
runs 5,000.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from types import SimpleNamespace
from typing import Any

from hypothesis import given
from stepflow.api import Scope, StepFunctionsService, lambda_handler
from stepflow.runtime import InMemoryBus, InMemoryLog
from stepflow.runtime.registry import InMemoryRegistry
from stepflow.runtime.task_queue import InMemoryTaskQueue

from tests.api.conftest import invoke
from tests.api.fuzz import PASS, ROLE, WAIT, Known, fuzz_settings, requests

TIMEOUT = 20.0
"""Seconds one request may take (generous: the machine is shared); more is a hang."""

CONTEXT = SimpleNamespace(
    function_name="api", memory_limit_in_mb=256, invoked_function_arn="arn", aws_request_id="r"
)
SCOPE = Scope("us-east-1", "000000000000")

STATUSES: Counter[int] = Counter()
"""Answers by status over the module (read by bench/fuzz_api.py)."""


def build() -> tuple[StepFunctionsService, Known]:
    """A service with one of each resource, and their ARNs and a live task token."""
    bus = InMemoryBus(1_700_000_000.0)
    queue = InMemoryTaskQueue(clock=lambda: bus.now)
    service = StepFunctionsService(
        log=InMemoryLog(),
        bus=bus,
        registry=InMemoryRegistry(),
        invoker=invoke,
        scope=SCOPE,
        clock=lambda: bus.now,
        task_queue=queue,
        activity_poll_seconds=0.01,
    )
    known = Known()
    machine = service.call("CreateStateMachine", {"name": "M", "definition": WAIT, "roleArn": ROLE})
    arn = machine["stateMachineArn"]
    express = service.call(
        "CreateStateMachine",
        {"name": "X", "definition": PASS, "roleArn": ROLE, "type": "EXPRESS", "publish": True},
    )
    version = service.call("PublishStateMachineVersion", {"stateMachineArn": arn})
    alias = service.call(
        "CreateStateMachineAlias",
        {
            "name": "live",
            "routingConfiguration": [
                {"stateMachineVersionArn": version["stateMachineVersionArn"], "weight": 100}
            ],
        },
    )
    execution = service.call("StartExecution", {"stateMachineArn": arn, "name": "run-1"})
    activity = service.call("CreateActivity", {"name": "work"})["activityArn"]
    job = {
        "StartAt": "A",
        "States": {"A": {"Type": "Task", "Resource": activity, "End": True}},
    }
    waiting = service.call(
        "CreateStateMachine", {"name": "J", "definition": json.dumps(job), "roleArn": ROLE}
    )
    service.call("StartExecution", {"stateMachineArn": waiting["stateMachineArn"]})
    while batch := bus.receive_batch(10):
        assert not service.stepper.handle_batch(batch)
        for message in batch:
            bus.ack(message)
    task = service.call("GetActivityTask", {"activityArn": activity})
    known.arns = [
        arn,
        express["stateMachineArn"],
        express["stateMachineVersionArn"],
        version["stateMachineVersionArn"],
        alias["stateMachineAliasArn"],
        execution["executionArn"],
        activity,
        waiting["stateMachineArn"],
        ROLE,
    ]
    known.tokens = [task["taskToken"]] if task.get("taskToken") else []
    return service, known


SERVICE, KNOWN = build()


def send(operation: str, body: str) -> tuple[int, str]:
    """One proxy event through the Lambda handler, in a thread bounded by :data:`TIMEOUT`."""
    event = {
        "httpMethod": "POST",
        "path": "/",
        "headers": {"X-Amz-Target": f"AWSStepFunctions.{operation}"},
        "body": body,
        "isBase64Encoded": False,
    }
    answer: list[dict[str, Any]] = []
    worker = threading.Thread(
        target=lambda: answer.append(lambda_handler.handler(event, CONTEXT)), daemon=True
    )
    worker.start()
    worker.join(TIMEOUT)
    assert answer, f"{operation} did not answer within {TIMEOUT} s: {body[:200]!r}"
    return int(answer[0]["statusCode"]), str(answer[0]["body"])


def check(status: int, text: str, operation: str, body: str) -> None:
    """No 5xx; a 4xx in AWS's error shape."""
    STATUSES[status] += 1
    assert status < 500, f"{operation} answered {status}: {text[:300]} to {body[:300]!r}"
    document = json.loads(text)
    if status >= 400:
        assert set(document) == {"__type", "message"}, document
        assert isinstance(document["__type"], str) and isinstance(document["message"], str)


@fuzz_settings()
@given(requests(KNOWN))
def test_no_request_is_a_5xx_or_a_hang(request: tuple[str, str]) -> None:
    operation, body = request
    lambda_handler.configure(SERVICE)
    try:
        status, text = send(operation, body)
    finally:
        lambda_handler.configure(None)
    check(status, text, operation, body)


def test_the_fuzzed_service_still_serves_ordinary_requests() -> None:
    """After the fuzzing (which may have deleted what it aimed at), the service still works."""
    created = SERVICE.call(
        "CreateStateMachine", {"name": "After", "definition": PASS, "roleArn": ROLE}
    )
    described = SERVICE.call(
        "DescribeStateMachine", {"stateMachineArn": created["stateMachineArn"]}
    )
    assert described["definition"] == PASS
    started = SERVICE.call("StartExecution", {"stateMachineArn": created["stateMachineArn"]})
    assert SERVICE.call("DescribeExecution", started)["status"] in ("RUNNING", "SUCCEEDED")
