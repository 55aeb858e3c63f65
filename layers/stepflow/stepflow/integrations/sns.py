"""``arn:aws:states:::sns:publish`` (and ``.waitForTaskToken``): publish one SNS message.

The parameters are SNS's ``Publish`` request (``TopicArn``, ``TargetArn`` or
``PhoneNumber``; ``Message``; ``Subject``, ``MessageAttributes``,
``MessageStructure``, ``MessageGroupId``, ``MessageDeduplicationId``). A
``Message`` that is not a string is sent as its JSON text, as Step Functions
does; a binary attribute's ``BinaryValue`` is base64 text in JSON. The output
is SNS's response (``MessageId``, ``SequenceNumber`` for FIFO topics) with the
SDK metadata; an error is ``SNS.<Exception>`` (``SNS.NotFoundException`` for a
topic that does not exist). With ``.waitForTaskToken`` the message carries the
task token (``$$.Task.Token`` in the parameters) and the task waits for
SendTaskSuccess/Failure.
"""

from __future__ import annotations

from typing import Any

from stepflow.engine.resources import Pattern
from stepflow.integrations.base import Integration, TaskRequest, unknown_action
from stepflow.integrations.errors import ErrorNames
from stepflow.integrations.optimized import (
    arn_region,
    call_optimized,
    decode_binary_attributes,
    json_text,
    not_an_object,
    unusable,
)
from stepflow.integrations.prechecks import shape_problem, without_nulls
from stepflow.runtime.clients import TaskClients
from stepflow.runtime.outcome import TaskOutcome

SNS = ErrorNames(
    prefix="SNS",
    cause_service="AmazonSNS",
    naming="modeled",
    base_exception="AmazonSNSException",
    validation_code="ValidationError",
)


class SnsPublish:
    """The optimized SNS integration: ``publish``, request-response or wait-for-token."""

    service = "sns"
    patterns: frozenset[Pattern] = frozenset({"request-response", "wait-for-token"})

    def check(self, action: str, pattern: Pattern) -> str | None:
        """Only ``publish``: Step Functions' optimized SNS integration has no other action."""
        return unknown_action("sns", action, ("publish",), "sns")

    def parameters_problem(self, action: str, parameters: Any) -> str | None:
        """Wrong JSON types, unknown fields, a non-base64 ``BinaryValue``.

        AWS refuses them before scheduling; a missing ``Message`` or topic is
        SNS's error when the task runs.
        """
        if action != "publish":
            return None
        if not isinstance(parameters, dict):
            return "The parameters of sns:publish must be a JSON object"
        request = without_nulls(parameters)
        if "Message" in request:
            request["Message"] = ""  # any value is sent, as its JSON text
        attributes = request.get("MessageAttributes")
        if isinstance(attributes, dict):
            decoded = decode_binary_attributes(attributes)
            if isinstance(decoded, str):
                return decoded
        return shape_problem("sns", "Publish", request)

    def call(self, request: TaskRequest, clients: TaskClients) -> TaskOutcome:
        """Publish the message; SNS's response, or its error as Step Functions names it."""
        parameters = request.parameters
        if not isinstance(parameters, dict):
            return not_an_object(request, "sns:publish")
        call = {k: v for k, v in parameters.items() if v is not None}
        if "Message" in call:
            call["Message"] = json_text(call["Message"])
        attributes = call.get("MessageAttributes")
        if isinstance(attributes, dict):
            decoded = decode_binary_attributes(attributes)
            if isinstance(decoded, str):
                return unusable(request, decoded)
            call["MessageAttributes"] = decoded
        target = call.get("TopicArn") or call.get("TargetArn")
        client = request.client(clients, "sns", arn_region(target))
        return call_optimized(request, client, "Publish", call, SNS)


INTEGRATIONS: tuple[Integration, ...] = (SnsPublish(),)
"""The SNS integrations StepFlow ships."""
