"""``.waitForTaskToken``: the token travels in the request, the execution waits for SendTask*."""

from __future__ import annotations

import json
from typing import Any

import pytest
from stepflow.activities import ActivityError
from stepflow.runtime import TaskOutcome

from tests.worker.harness import Harness, task_machine

SQS_WAIT = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
LAMBDA_WAIT = "arn:aws:states:::lambda:invoke.waitForTaskToken"


def sqs_machine(queue_url: str, **task: Any) -> dict[str, Any]:
    return task_machine(
        SQS_WAIT,
        Parameters={
            "QueueUrl": queue_url,
            "MessageBody": {"order.$": "$.order", "token.$": "$$.Task.Token"},
        },
        **task,
    )


def received(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_sqs_send_message_wait_for_task_token_completes_on_send_task_success(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="orders")["QueueUrl"]
    h = Harness(sqs_machine(url), sqs=sqs)
    arn = h.start({"order": 42})
    assert h.status(arn) == "RUNNING"
    [body] = received(sqs, url)
    assert body["order"] == 42
    assert "TaskStarted" in h.types(arn)
    h.service.send_task_success({"taskToken": body["token"], "output": '{"shipped": 42}'})
    assert h.status(arn) == "SUCCEEDED"
    assert h.output(arn) == {"shipped": 42}
    with pytest.raises(ActivityError) as again:
        h.service.send_task_success({"taskToken": body["token"], "output": "{}"})
    assert again.value.code == "TaskTimedOut"


def test_a_callback_that_never_comes_times_out(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="orders")["QueueUrl"]
    h = Harness(sqs_machine(url, TimeoutSeconds=300), sqs=sqs)
    arn = h.start({"order": 1})
    [body] = received(sqs, url)
    h.advance(300)
    timed_out = [e for e in h.history(arn) if e["type"] == "TaskTimedOut"]
    assert timed_out[0]["taskTimedOutEventDetails"]["error"] == "States.Timeout"
    with pytest.raises(ActivityError) as late:
        h.service.send_task_failure({"taskToken": body["token"], "error": "Late"})
    assert late.value.code == "TaskTimedOut"


def test_a_failed_send_fails_the_task(sqs: Any) -> None:
    missing = "https://sqs.us-east-1.amazonaws.com/123456789012/missing"
    h = Harness(sqs_machine(missing), sqs=sqs)
    arn = h.start({"order": 1})
    failed = [e for e in h.history(arn) if e["type"] == "TaskFailed"]
    assert failed[0]["taskFailedEventDetails"]["error"].startswith("SQS.")


def test_lambda_invoke_wait_for_task_token_hands_the_token_to_the_function() -> None:
    calls: list[dict[str, Any]] = []

    def invoke(body: dict[str, Any]) -> TaskOutcome:
        calls.append(body)
        return TaskOutcome.succeeded({"StatusCode": 200, "Payload": "ignored"})

    definition = task_machine(
        LAMBDA_WAIT,
        Parameters={"FunctionName": "approve", "Payload": {"token.$": "$$.Task.Token"}},
        HeartbeatSeconds=60,
    )
    h = Harness(definition, invoker=invoke)
    arn = h.start()
    [call] = calls
    assert call["resource"] == LAMBDA_WAIT
    token = call["input"]["Payload"]["token"]
    h.advance(50)
    h.service.send_task_heartbeat({"taskToken": token})
    h.advance(50)
    assert h.status(arn) == "RUNNING"  # the heartbeat pushed the deadline back
    h.service.send_task_failure({"taskToken": token, "error": "Rejected", "cause": "no"})
    failed = [e for e in h.history(arn) if e["type"] == "TaskFailed"]
    assert failed[0]["taskFailedEventDetails"] == {
        "resourceType": "lambda",
        "resource": "invoke.waitForTaskToken",
        "error": "Rejected",
        "cause": "no",
    }
