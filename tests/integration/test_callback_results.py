"""``.waitForTaskToken`` results, as on AWS, in memory and on the DynamoDB log (moto).

- A SendTaskSuccess result over ``max_payload_bytes`` (default 256 KiB) is
  accepted and fails the task with ``States.DataLimitExceeded``, which a Catch
  naming it handles; with the limit raised, the result passes through the S3
  payload offload.
- SendTaskFailure with neither error nor cause is caught by ``States.ALL``
  (not ``States.Runtime``) as ``{"Error": null, "Cause": null}``: the dev case
  ``test_sqs_failure_in_wait_for_task_tok_no_error_field`` recorded on AWS.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from stepflow.limits import KIB, MIB, Limits
from stepflow.runtime.clients import FixedClients
from stepflow.testing import WorkflowEnvironment, open_environment

BACKENDS = ["memory", "moto"]
SEND = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"


def machine(*catch: list[str], retry: bool = True) -> dict[str, Any]:
    catchers = [
        {"ErrorEquals": errors, "ResultPath": f"$.caught{i}", "Next": "Caught"}
        for i, errors in enumerate(catch)
    ]
    return {
        "StartAt": "Wait",
        "States": {
            "Wait": {
                "Type": "Task",
                "Resource": SEND,
                "Parameters": {"QueueUrl": "q", "MessageBody": {"token.$": "$$.Task.Token"}},
                "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2}] if retry else [],
                "Catch": catchers,
                "End": True,
            },
            "Caught": {"Type": "Pass", "End": True},
        },
    }


def open_task(env: WorkflowEnvironment, definition: dict[str, Any]) -> tuple[str, str]:
    arn = env.start(env.register(definition), {"order": 7})
    env.run(arn)
    [task] = env.open_tasks(arn)
    return arn, task.token


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_result_over_the_default_limit_fails_the_task_with_data_limit_exceeded(
    backend: str,
) -> None:
    with open_environment(backend) as env:
        arn, token = open_task(env, machine(["States.DataLimitExceeded"]))
        env.complete(token, {"blob": "x" * (256 * KIB)})  # accepted: the task fails
        result = env.result(arn)
    assert result.status == "SUCCEEDED", result.cause
    caught = json.loads(result.output)["caught0"]
    assert caught["Error"] == "States.DataLimitExceeded"
    types = [e["type"] for e in result.history]
    assert types.count("TaskFailed") == 1  # not retried by States.ALL, as on AWS
    assert "TaskSucceeded" not in types


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_result_over_the_limit_is_not_caught_by_states_all(backend: str) -> None:
    with open_environment(backend) as env:
        arn, token = open_task(env, machine(["States.ALL"]))
        env.complete(token, "é" * (130 * KIB))  # 260 KiB as UTF-8, 130 K characters
        result = env.result(arn)
    assert (result.status, result.error) == ("FAILED", "States.DataLimitExceeded")


def test_a_large_result_with_the_limit_raised_goes_through_the_s3_offload() -> None:
    with open_environment(
        "moto", limits=Limits(max_payload_bytes=2 * MIB), payload_bucket="stepflow-payloads"
    ) as env:
        arn, token = open_task(env, machine(["States.ALL"]))
        env.complete(token, {"blob": "z" * MIB})
        result = env.result(arn)
    assert result.status == "SUCCEEDED", result.cause
    assert json.loads(result.output) == {"blob": "z" * MIB}


@pytest.mark.parametrize("backend", BACKENDS)
def test_send_task_failure_without_error_is_caught_by_states_all_with_nulls(
    backend: str,
) -> None:
    with open_environment(backend) as env:
        arn, token = open_task(env, machine(["States.Runtime"], ["States.ALL"], retry=False))
        env.fail(token)
        result = env.result(arn)
    assert result.status == "SUCCEEDED", result.cause
    assert json.loads(result.output) == {"order": 7, "caught1": {"Error": None, "Cause": None}}
    failed = [e for e in result.history if e["type"] == "TaskFailed"]
    assert [e["taskFailedEventDetails"] for e in failed] == [
        {"resourceType": "sqs", "resource": "sendMessage.waitForTaskToken"}
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_send_task_failure_with_an_error_keeps_the_keys_it_has(backend: str) -> None:
    with open_environment(backend) as env:
        arn, token = open_task(env, machine(["Rejected"], retry=False))
        env.fail(token, "Rejected")
        result = env.result(arn)
    assert json.loads(result.output)["caught0"] == {"Error": "Rejected"}


class _HugeLambda:
    """A Lambda client whose function answers a 300 KB payload."""

    def __init__(self) -> None:
        self.calls = 0

    def invoke(self, **request: Any) -> dict[str, Any]:
        self.calls += 1
        payload = json.dumps({"blob": "x" * 300_000}).encode()
        return {"StatusCode": 200, "Payload": payload, "ResponseMetadata": {}}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_send_response_too_large_to_record_fails_the_task(backend: str) -> None:
    fake = _HugeLambda()
    state = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": "f", "Payload": {"token.$": "$$.Task.Token"}},
        "End": True,
    }
    with open_environment(backend, aws=FixedClients(**{"lambda": fake})) as env:
        arn = env.start(env.register({"StartAt": "T", "States": {"T": state}}), {})
        env.run(arn)
        result = env.result(arn)
    assert (result.status, result.error) == ("FAILED", "States.DataLimitExceeded")
    assert "TaskSubmitted" not in [e["type"] for e in result.history]
    assert fake.calls == 1
