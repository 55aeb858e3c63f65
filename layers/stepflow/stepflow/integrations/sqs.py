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

from typing import Any

from stepflow.engine.resources import Pattern
from stepflow.integrations.api_call import OPTIMIZED, call_api
from stepflow.integrations.base import Integration, TaskRequest, unknown_action
from stepflow.integrations.errors import ErrorNames, parameters_refused
from stepflow.integrations.optimized import decode_binary_attributes, json_text
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

SQS = ErrorNames(prefix="SQS", cause_service="AmazonSQS")
"""``SQS.<ErrorCode>``."""


class SQSIntegration:
    """Sends SQS messages with the task's role."""

    service = "sqs"
    patterns: frozenset[Pattern] = frozenset({"request-response", "wait-for-token"})

    def check(self, action: str, pattern: Pattern) -> str | None:
        """Only ``sendMessage`` is an optimized SQS action."""
        return unknown_action("sqs", action, ("sendMessage",), "sqs")

    def parameters_problem(self, action: str, parameters: Any) -> str | None:
        """A missing or non-string ``QueueUrl``, a missing ``MessageBody`` (before scheduling)."""
        return _request_problem(parameters) if action == "sendMessage" else None

    def call(self, request: TaskRequest, clients: TaskClients) -> TaskOutcome:
        """Send the message of ``request``; the output is SQS's response."""
        parameters = request.parameters
        problem = _request_problem(parameters)
        if problem is not None:
            return parameters_refused(parameters, problem, request.state_name)
        call = {k: parameters[k] for k in SEND_FIELDS if k in parameters}
        call["MessageBody"] = json_text(parameters["MessageBody"])
        for field in ("MessageAttributes", "MessageSystemAttributes"):
            if isinstance(call.get(field), dict):
                decoded = decode_binary_attributes(call[field])
                if isinstance(decoded, str):
                    return parameters_refused(parameters, decoded, request.state_name)
                call[field] = decoded
        sqs = request.client(clients, "sqs", queue_region(parameters["QueueUrl"]))
        return call_api(request, sqs, "SendMessage", call, SQS, OPTIMIZED)


INTEGRATIONS: tuple[Integration, ...] = (SQSIntegration(),)
"""The SQS integration (``sqs:sendMessage``)."""


def queue_region(queue_url: str) -> str | None:
    """The region of an ``https://sqs.<region>.amazonaws.com/...`` URL (None: the default)."""
    host = queue_url.split("://", 1)[-1].split("/", 1)[0]
    parts = host.split(".")
    if len(parts) >= 4 and parts[0] == "sqs" and parts[2] == "amazonaws":
        return parts[1]
    return None


def _request_problem(parameters: Any) -> str | None:
    if not isinstance(parameters, dict):
        return "The Parameters must be a JSON object"
    if "QueueUrl" not in parameters:
        return "The field 'QueueUrl' is required but was missing"
    if not isinstance(parameters["QueueUrl"], str):
        return "The value for the field 'QueueUrl' must be a STRING"
    if "MessageBody" not in parameters:
        return "The field 'MessageBody' is required but was missing"
    for field in ("MessageAttributes", "MessageSystemAttributes"):
        if isinstance(parameters.get(field), dict):
            decoded = decode_binary_attributes(parameters[field])
            if isinstance(decoded, str):
                return decoded
    return None
