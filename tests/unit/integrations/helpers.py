"""The integration tests' helpers: task message bodies, the invoker, queues (moto in process)."""

from __future__ import annotations

import json
from typing import Any

from stepflow.aws.role_clients import RoleClients
from stepflow.integrations import IntegrationInvoker, default_registry
from stepflow.runtime.clients import FixedClients

from tests.moto_env import REGION

ROLE = "arn:aws:iam::123456789012:role/StepFlowExecutionRole"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:Orders:run-1"
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:Orders"
TOKEN = "token-of-the-task"


def fixed(aws: dict[str, Any]) -> FixedClients:
    """The task clients of in-memory wiring: moto's clients whatever the role."""
    return FixedClients(**aws)


def role_clients() -> RoleClients:
    """The edge's client factory without AssumeRole (as ``stepflow local`` runs it)."""
    return RoleClients(assume_roles=False, region=REGION)


def body(resource: str, parameters: Any, **fields: Any) -> dict[str, Any]:
    """An inline task message body for ``resource`` with ``parameters`` as its input."""
    wait = resource.endswith(".waitForTaskToken")
    return {
        "resource": resource,
        "input": parameters,
        "role_arn": ROLE,
        "execution_role": ROLE,
        "execution_arn": EXECUTION,
        "state_name": "Task",
        "task_id": "t-1",
        **({"task_token": TOKEN} if wait else {}),
        **fields,
    }


def invoker(clients: Any) -> IntegrationInvoker:
    """The runtime's invoker over the default registry."""
    return IntegrationInvoker(default_registry(), clients)


def queue(aws: dict[str, Any], name: str = "inbox") -> tuple[str, str]:
    """A new SQS queue: (url, arn)."""
    url = aws["sqs"].create_queue(QueueName=name)["QueueUrl"]
    attributes = aws["sqs"].get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return url, attributes["Attributes"]["QueueArn"]


def drain(aws: dict[str, Any], url: str) -> list[dict[str, Any]]:
    """Every message in the queue now (received and deleted)."""
    found: list[dict[str, Any]] = []
    while True:
        got = (
            aws["sqs"]
            .receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
            .get("Messages", [])
        )
        if not got:
            return found
        for message in got:
            aws["sqs"].delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        found.extend(got)


def definition(resource: str, parameters: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A one-Task state machine."""
    task = {"Type": "Task", "Resource": resource, "Parameters": parameters, "End": True}
    return {"StartAt": "Task", "States": {"Task": {**task, **fields}}}


def sdk_metadata_ok(output: dict[str, Any]) -> bool:
    """The output carries the SDK metadata Step Functions adds, with a 200 and a request id."""
    http = output.get("SdkHttpMetadata") or {}
    return (
        http.get("HttpStatusCode") == 200
        and bool(output.get("SdkResponseMetadata", {}).get("RequestId"))
        and isinstance(http.get("AllHttpHeaders"), dict)
        and json.dumps(output) is not None
    )
