"""SQS: the optimized ``sqs:sendMessage`` integration, request-response and ``.waitForTaskToken``.

The state's effective input is the ``SendMessage`` request: ``QueueUrl``
(required), ``MessageBody`` (a value that is not a string is sent as its JSON
text, as Step Functions does), ``DelaySeconds``, ``MessageAttributes``,
``MessageSystemAttributes``, ``MessageDeduplicationId`` and ``MessageGroupId``.
The output is SQS's response as Step Functions returns it: ``MessageId``,
``MD5OfMessageBody`` (and ``MD5OfMessageAttributes``, ``SequenceNumber`` when
SQS returns them), ``SdkHttpMetadata`` and ``SdkResponseMetadata``. For
``.waitForTaskToken`` that response is the TaskSubmitted output, and the task
waits for SendTaskSuccess / SendTaskFailure with the token the body carries.

An error of SQS fails the task with ``SQS.<ErrorCode>``; a request without a
string ``QueueUrl`` or without a ``MessageBody`` fails with ``States.Runtime``
without calling SQS.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from stepflow.engine.resources import Pattern
from stepflow.errors import StatesErrorName
from stepflow.integrations.base import Integration, TaskRequest
from stepflow.integrations.errors import service_failure
from stepflow.integrations.metadata import sdk_metadata, without_metadata
from stepflow.runtime.clients import TaskClients
from stepflow.runtime.outcome import TaskOutcome

SEND_FIELDS = (
    "QueueUrl",
    "DelaySeconds",
    "MessageAttributes",
    "MessageSystemAttributes",
    "MessageDeduplicationId",
    "MessageGroupId",
)
"""The ``SendMessage`` request fields passed on as they are (``MessageBody`` is encoded apart)."""


class SQSIntegration:
    """Sends SQS messages with the task's role."""

    service = "sqs"
    patterns: frozenset[Pattern] = frozenset({"request-response", "wait-for-token"})

    def check(self, action: str, pattern: Pattern) -> str | None:
        """Only ``sendMessage`` is an optimized SQS action."""
        if action != "sendMessage":
            return (
                f"sqs has no optimized action {action!r} "
                "(use sqs:sendMessage, or aws-sdk:sqs for the others)"
            )
        return None

    def call(self, request: TaskRequest, clients: TaskClients) -> TaskOutcome:
        """Send the message of ``request``; the output is SQS's response."""
        parameters = request.parameters
        problem = _request_problem(parameters)
        if problem is not None:
            return TaskOutcome.failed(
                StatesErrorName.RUNTIME,
                f"The Parameters of sqs:sendMessage could not be used to start the Task: "
                f"[{problem}]",
            )
        body = parameters["MessageBody"]
        if not isinstance(body, str):
            body = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        call = {k: parameters[k] for k in SEND_FIELDS if k in parameters}
        for field in ("MessageAttributes", "MessageSystemAttributes"):
            if isinstance(call.get(field), dict):
                decoded = _decode_binary(call[field])
                if isinstance(decoded, str):
                    return TaskOutcome.failed(
                        StatesErrorName.RUNTIME,
                        f"The Parameters of sqs:sendMessage could not be used to start the "
                        f"Task: [{decoded}]",
                    )
                call[field] = decoded
        sqs = request.client(clients, "sqs", queue_region(parameters["QueueUrl"]))
        try:
            response: dict[str, Any] = sqs.send_message(MessageBody=body, **call)
        except Exception as exc:
            failed = service_failure(exc, "SQS", "AmazonSQS")
            if failed is not None:
                return failed
            if type(exc).__module__.startswith("botocore"):
                return TaskOutcome.failed("SQS.SdkClientException", str(exc))
            raise
        return TaskOutcome.succeeded({**without_metadata(response), **sdk_metadata(response)})


INTEGRATIONS: tuple[Integration, ...] = (SQSIntegration(),)
"""The SQS integration (``sqs:sendMessage``)."""


def queue_region(queue_url: str) -> str | None:
    """The region of an ``https://sqs.<region>.amazonaws.com/...`` URL (None: the default)."""
    host = queue_url.split("://", 1)[-1].split("/", 1)[0]
    parts = host.split(".")
    if len(parts) >= 4 and parts[0] == "sqs" and parts[2] == "amazonaws":
        return parts[1]
    return None


def _decode_binary(attributes: dict[str, Any]) -> dict[str, Any] | str:
    """The attributes with ``BinaryValue``/``BinaryListValues`` decoded from base64 text.

    JSON has no bytes: Step Functions reads a binary attribute's string as base64,
    where botocore would send the string's UTF-8 bytes (base64-encoding them again).
    A string result says which attribute is not base64 text.
    """
    decoded: dict[str, Any] = {}
    for name, attribute in attributes.items():
        if isinstance(attribute, dict):
            attribute = dict(attribute)
            try:
                if isinstance(attribute.get("BinaryValue"), str):
                    attribute["BinaryValue"] = base64.b64decode(
                        attribute["BinaryValue"], validate=True
                    )
                if isinstance(attribute.get("BinaryListValues"), list):
                    attribute["BinaryListValues"] = [
                        base64.b64decode(v, validate=True) if isinstance(v, str) else v
                        for v in attribute["BinaryListValues"]
                    ]
            except (binascii.Error, ValueError):
                return f"The BinaryValue of the message attribute '{name}' is not base64 text"
        decoded[name] = attribute
    return decoded


def _request_problem(parameters: Any) -> str | None:
    if not isinstance(parameters, dict):
        return "The Parameters must be a JSON object"
    if "QueueUrl" not in parameters:
        return "The field 'QueueUrl' is required but was missing"
    if not isinstance(parameters["QueueUrl"], str):
        return "The value for the field 'QueueUrl' must be a STRING"
    if "MessageBody" not in parameters:
        return "The field 'MessageBody' is required but was missing"
    return None
