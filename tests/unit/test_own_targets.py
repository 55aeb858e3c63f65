"""StepFlow's own resources are refused as task targets, before any call.

The guard wraps the task invoker; these tests run it alone (every reference
form, hostile variants) and in the in-memory driver (the execution fails with
``States.Runtime``, which no Retry or Catch handles, and the inner invoker is
never called). The same guard over ``stepflow local``: tests/e2e/test_local_own_targets.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from stepflow.runtime.outcome import TaskOutcome
from stepflow.runtime.targets import OWN_TARGET_CAUSE, OwnResources, OwnTargetGuard, task_targets
from stepflow.testing import WorkflowEnvironment

OWN = OwnResources.of(
    functions=["StepFlow-stepper", "arn:aws:lambda:us-east-1:123456789012:function:StepFlow-api"],
    queues=[
        "https://sqs.us-east-1.amazonaws.com/123456789012/StepFlow-Transitions",
        "arn:aws:sqs:us-east-1:123456789012:StepFlow-TransitionsDlq",
    ],
    queue_prefixes=["stepflow-tq-", "stepflow-tqdlq-"],
    tables=["StepFlow-Log"],
    buckets=["stepflow-payloads"],
)
ACCOUNT = "123456789012"
INVOKE = "arn:aws:states:::lambda:invoke"
SEND = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"


@pytest.mark.parametrize(
    "reference",
    [
        "StepFlow-stepper",
        "StepFlow-stepper:live",
        "StepFlow-stepper:$LATEST",
        f"{ACCOUNT}:function:StepFlow-stepper",
        f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:StepFlow-stepper",
        f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:StepFlow-api:7",
        " StepFlow-api ",
    ],
)
def test_every_form_of_an_own_function_is_owned(reference: str) -> None:
    assert OWN.owns("function", reference)


@pytest.mark.parametrize(
    "reference",
    ["stepflow-stepper", "StepFlow-stepper2", f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:work"],
)
def test_other_functions_are_not(reference: str) -> None:
    assert not OWN.owns("function", reference)


@pytest.mark.parametrize(
    "reference",
    [
        "https://sqs.us-east-1.amazonaws.com/123456789012/StepFlow-Transitions",
        "https://queue.amazonaws.com/123456789012/StepFlow-Transitions/",
        "http://127.0.0.1:5000/123456789012/StepFlow-Transitions?x=1",
        "https://sqs.us-east-1.amazonaws.com/123456789012/StepFlow%2DTransitions",
        "arn:aws:sqs:us-east-1:123456789012:StepFlow-TransitionsDlq",
        "https://sqs.us-east-1.amazonaws.com/123456789012/StepFlow-TransitionsDlq",
        "https://sqs.us-east-1.amazonaws.com/123456789012/stepflow-tq-payments",
        "https://sqs.us-east-1.amazonaws.com/123456789012/stepflow-tqdlq-payments",
    ],
)
def test_own_queues_by_url_or_arn_and_the_activity_queues_by_prefix(reference: str) -> None:
    assert OWN.owns("queue", reference)


def test_tables_and_buckets_by_name_or_arn() -> None:
    assert OWN.owns("table", "StepFlow-Log")
    assert OWN.owns("table", f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/StepFlow-Log/index/gsi1")
    assert OWN.owns("bucket", "arn:aws:s3:::stepflow-payloads/payloads/x")
    assert not OWN.owns("table", "Orders")
    assert not OWN.owns("queue", "https://sqs.us-east-1.amazonaws.com/1/orders")


def test_targets_of_each_integration() -> None:
    fn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:f"
    assert task_targets(fn, {}) == [("function", fn)]
    assert task_targets(INVOKE, {"FunctionName": "f"}) == [("function", "f")]
    assert task_targets(SEND, {"QueueUrl": "q"}) == [("queue", "q")]
    assert task_targets("arn:aws:states:::dynamodb:putItem", {"TableName": "t"}) == [("table", "t")]
    assert task_targets("arn:aws:states:::aws-sdk:s3:getObject", {"Bucket": "b"}) == [
        ("bucket", "b")
    ]
    assert task_targets(INVOKE, {"FunctionName": 7}) == []


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, body: dict[str, Any]) -> TaskOutcome:
        self.calls += 1
        return TaskOutcome.succeeded({"ran": True})


def _task(resource: str, parameters: dict[str, Any]) -> dict[str, Any]:
    # A Retry and a Catch on States.ALL: neither may handle the refusal.
    state = {
        "Type": "Task",
        "Resource": resource,
        "Parameters": parameters,
        "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 3}],
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
        "End": True,
    }
    return {"StartAt": "T", "States": {"T": state, "Caught": {"Type": "Succeed"}}}


@pytest.mark.parametrize(
    ("resource", "parameters"),
    [
        (INVOKE, {"FunctionName": "StepFlow-stepper", "Payload": {}}),
        (
            SEND,
            {
                "QueueUrl": "https://sqs.us-east-1.amazonaws.com/1/StepFlow-Transitions",
                "MessageBody": {"token.$": "$$.Task.Token"},
            },
        ),
        (f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:StepFlow-api", {}),
    ],
)
def test_in_memory_the_execution_fails_and_nothing_is_called(
    resource: str, parameters: dict[str, Any]
) -> None:
    inner = Counting()
    env = WorkflowEnvironment(invoker=OwnTargetGuard(inner, OWN))
    arn = env.start(_task(resource, parameters))
    env.run(arn)
    result = env.result(arn)
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert OWN_TARGET_CAUSE in (result.cause or "")
    assert inner.calls == 0
    assert env.open_tasks() == []


def test_in_memory_other_targets_run_once() -> None:
    inner = Counting()
    env = WorkflowEnvironment(invoker=OwnTargetGuard(inner, OWN))
    arn = env.start(_task(INVOKE, {"FunctionName": "work", "Payload": {}}))
    env.run(arn)
    assert env.result(arn).status == "SUCCEEDED"
    assert inner.calls == 1
