"""The request checks the optimized integrations share (``dynamodb:*``, ``sns:publish``, ...).

The call itself is :func:`call_optimized`: :func:`.api_call.call_api` with the
SDK metadata, errors named by :class:`.errors.ErrorNames`. Before it:

- a required member that is null or missing is the service's validation error
  (``Value null at 'item' failed to satisfy constraint: Member must not be null``);
  a value of the wrong JSON type, or a field the API does not have, fails before
  the call with ``States.Runtime``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from stepflow.integrations.api_call import OPTIMIZED, call_api
from stepflow.integrations.base import TaskRequest
from stepflow.integrations.errors import (
    ErrorNames,
    null_violation,
    parameters_refused,
    violations_message,
)
from stepflow.runtime.outcome import TaskOutcome


def json_text(value: Any) -> str:
    """A string as is, anything else as compact JSON text (as Step Functions sends it)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def validation_error(violations: list[str], names: ErrorNames) -> TaskOutcome:
    """The service's answer to a request that breaks its constraints (before any call)."""
    return names.invalid(violations_message(violations))


def call_optimized(
    request: TaskRequest,
    client: Any,
    operation: str,
    call: dict[str, Any],
    names: ErrorNames,
    violations: list[str] | None = None,
) -> TaskOutcome:
    """Make an optimized integration's call (:data:`.api_call.OPTIMIZED`) once.

    ``violations`` (AWS's, found by the integration) and the required members
    of the task's parameters that are null or missing fail it first, as the
    service's validation error, without a call.
    """
    parameters = request.parameters if isinstance(request.parameters, dict) else {}
    found = [*(violations or []), *required_nulls(client, operation, parameters)]
    if found:
        return validation_error(found, names)
    return call_api(request, client, operation, call, names, OPTIMIZED)


def required_nulls(client: Any, operation: str, parameters: dict[str, Any]) -> list[str]:
    """AWS's violations for the required members of ``operation`` that are null or missing."""
    model = client.meta.service_model.operation_model(operation).input_shape
    required = list(getattr(model, "required_members", ()) or ())
    return [null_violation(name) for name in required if parameters.get(name) is None]


def unusable(request: TaskRequest, problem: str) -> TaskOutcome:
    """Parameters the integration cannot send (the wrong JSON type, an unknown field)."""
    return parameters_refused(request.parameters, problem, request.state_name)


def arn_region(arn: Any) -> str | None:
    """The region of an ARN (None: not an ARN, or none named)."""
    if not isinstance(arn, str) or not arn.startswith("arn:"):
        return None
    parts = arn.split(":")
    return parts[3] if len(parts) > 5 and parts[3] else None


def not_an_object(request: TaskRequest, what: str) -> TaskOutcome:
    """The parameters of a task that are no JSON object."""
    return unusable(request, f"The parameters of {what} must be a JSON object")


def decode_binary_attributes(attributes: dict[str, Any]) -> dict[str, Any] | str:
    """Message attributes with ``BinaryValue``/``BinaryListValues`` decoded from base64.

    JSON has no bytes: Step Functions reads a binary attribute's string as base64
    (botocore would send the string's UTF-8 bytes, base64-encoding them again).
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
