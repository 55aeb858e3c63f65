"""Failures that are not AWS's answers must fail the task, never escape the invoker.

An exception out of the invoker releases the task's lease and raises in the
stepper: the task message is delivered again (up to five times, then the DLQ)
and the execution hangs instead of reaching its Catch. These are the inputs and
outages that did that: an endpoint that refuses connections (the optimized
dynamodb/sns/events path re-raised botocore's EndpointConnectionError) and a
region taken from a user-supplied ARN or URL that botocore refuses to build a
client for (InvalidRegionError, for every integration).
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.config import Config
from stepflow.aws.role_clients import RoleClients

from tests.moto_env import REGION
from tests.unit.integrations.helpers import body, invoker

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused
ONE_TRY = Config(retries={"total_max_attempts": 1}, connect_timeout=1)
SERVICES = ("sns", "sqs", "events", "dynamodb", "lambda", "s3", "athena")

CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "SNS": (
        "arn:aws:states:::sns:publish",
        {"TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Message": "x"},
    ),
    "EventBridge": (
        "arn:aws:states:::events:putEvents",
        {"Entries": [{"Source": "a", "DetailType": "b", "Detail": "{}"}]},
    ),
    "DynamoDB": (
        "arn:aws:states:::dynamodb:getItem",
        {"TableName": "orders", "Key": {"id": {"S": "1"}}},
    ),
}


def _unreachable(monkeypatch: pytest.MonkeyPatch) -> RoleClients:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return RoleClients(
        assume_roles=False,
        region=REGION,
        endpoint_url=UNREACHABLE,
        configs={service: ONE_TRY for service in SERVICES},
    )


@pytest.mark.parametrize("prefix", sorted(CALLS))
def test_an_unreachable_endpoint_fails_the_task_as_an_sdk_client_exception(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    resource, parameters = CALLS[prefix]
    outcome = invoker(_unreachable(monkeypatch))(body(resource, parameters))
    assert not outcome.ok
    assert outcome.error == f"{prefix}.SdkClientException"
    assert "Could not connect" in (outcome.cause or "")


BAD_REGIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "sns": (
        "arn:aws:states:::sns:publish",
        {"TopicArn": "arn:aws:sns:bad_region!:123456789012:t", "Message": "x"},
    ),
    "sqs": (
        "arn:aws:states:::sqs:sendMessage",
        {"QueueUrl": "https://sqs.bad_region.amazonaws.com/123456789012/q", "MessageBody": "x"},
    ),
    "lambda": (
        "arn:aws:states:::lambda:invoke",
        {"FunctionName": "arn:aws:lambda:bad_region!:123456789012:function:f"},
    ),
    "dynamodb": (
        "arn:aws:states:::dynamodb:getItem",
        {
            "TableName": "arn:aws:dynamodb:bad_region:123456789012:table/orders",
            "Key": {"id": {"S": "1"}},
        },
    ),
}


@pytest.mark.parametrize("service", sorted(BAD_REGIONS))
def test_a_region_botocore_refuses_fails_the_task_instead_of_raising(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    resource, parameters = BAD_REGIONS[service]
    outcome = invoker(_unreachable(monkeypatch))(body(resource, parameters))
    assert not outcome.ok
    assert outcome.error == "States.TaskFailed"
    assert "bad_region" in (outcome.cause or "")
