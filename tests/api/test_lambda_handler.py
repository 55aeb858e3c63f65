"""The API Lambda on raw proxy events: encodings, headers, failures, configuration."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace
from typing import Any

import pytest
from stepflow.api import lambda_handler

from tests.api.conftest import Api

CONTEXT = SimpleNamespace(
    function_name="api", memory_limit_in_mb=256, invoked_function_arn="arn", aws_request_id="r"
)


@pytest.fixture
def configured(api: Api) -> Any:
    lambda_handler.configure(api.service)
    yield api
    lambda_handler.configure(None)


def call(body: str, target: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    event = {
        "httpMethod": "POST",
        "path": "/",
        "headers": {"X-Amz-Target": target, "content-type": "application/x-amz-json-1.0"},
        "body": body,
        "isBase64Encoded": False,
        **extra,
    }
    response = lambda_handler.handler(event, CONTEXT)
    assert response["headers"]["Content-Type"] == "application/x-amz-json-1.0"
    return response["statusCode"], json.loads(response["body"])


def test_base64_body_and_lowercase_headers(configured: Api) -> None:
    body = base64.b64encode(b'{"maxResults": 5}').decode()
    event = {
        "httpMethod": "POST",
        "path": "/",
        "headers": {"x-amz-target": "AWSStepFunctions.ListStateMachines"},
        "body": body,
        "isBase64Encoded": True,
    }
    response = lambda_handler.handler(event, CONTEXT)
    assert response["statusCode"] == 200 and json.loads(response["body"]) == {"stateMachines": []}


def test_bad_requests_are_400s(configured: Api) -> None:
    target = "AWSStepFunctions.ListStateMachines"
    assert call("", target) == (200, {"stateMachines": []})
    assert call("x", target, isBase64Encoded=True)[1]["__type"] == "SerializationException"
    assert call("{}", target, httpMethod="GET")[1]["__type"] == "UnknownOperationException"
    assert call("{}", target, path="/other")[0] == 400
    assert call("{}", target, headers=None)[1]["__type"] == "UnknownOperationException"


def test_a_service_failure_is_a_500_without_details(configured: Api) -> None:
    def broken(**_: Any) -> Any:
        raise RuntimeError("secret internals")

    configured.registry.heads = broken  # type: ignore[method-assign]
    status, document = call("{}", "AWSStepFunctions.ListStateMachines")
    assert status == 500 and document["__type"] == "InternalFailure"
    assert "secret" not in document["message"]


def test_build_service_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "TABLE_NAME": "log",
        "QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/111122223333/q",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_REGION": "eu-west-1",
        "STEPFLOW_ACCOUNT_ID": "111122223333",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "STEPFLOW_SIGNING_KEY": "test-signing-key-" + "0" * 32,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    service = lambda_handler.build_service()
    assert service.scope.machine_arn("M") == "arn:aws:states:eu-west-1:111122223333:stateMachine:M"
    assert type(service.machines.registry).__name__ == "DynamoDBRegistry"


def test_a_forged_activity_task_is_dropped_and_counted_as_a_metric(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepflow.activities.names import queue_name
    from stepflow.api.service import StepFunctionsService
    from stepflow.runtime import InMemoryBus, InMemoryLog
    from stepflow.runtime.registry import InMemoryRegistry
    from stepflow.runtime.task_queue import InMemoryTaskQueue

    from tests.api.conftest import SCOPE, invoke
    from tests.integration.test_stepper_handler import emf_metrics

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
        activity_poll_seconds=0.0,
    )
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    lambda_handler.configure(service)
    try:
        # GIVEN an activity whose queue holds a task message StepFlow did not sign
        arn = service.call("CreateActivity", {"name": "pay"})["activityArn"]
        queue.send(queue_name("pay"), {"execution_arn": "x", "id": "i", "kind": "task", "body": {}})
        capsys.readouterr()
        # WHEN a worker asks for a task through the API Lambda
        status, body = call(json.dumps({"activityArn": arn}), "AWSStepFunctions.GetActivityTask")
        # THEN it gets none, and the forgery is one ForgedMessages metric
        assert status == 200 and not body.get("taskToken")
        assert emf_metrics(capsys.readouterr().out)["ForgedMessages"] == [1.0]
        assert service.signer is not None and service.signer.forged == 1
    finally:
        lambda_handler.configure(None)
