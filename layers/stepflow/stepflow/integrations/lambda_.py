"""Lambda: function ARNs and the optimized ``lambda:invoke`` integration.

Two resources, as in Step Functions:

- ``arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`` (service
  ``lambda``, action ``function``): the state's input is the payload; the
  output is the function's parsed response;
- ``arn:aws:states:::lambda:invoke`` (request-response and
  ``.waitForTaskToken``): the input holds the ``Invoke`` request
  (``FunctionName``, ``Payload``, ``Qualifier``, ``InvocationType``,
  ``ClientContext``, ``LogType``); the output is the response envelope
  ``{ExecutedVersion, Payload, SdkHttpMetadata, SdkResponseMetadata, StatusCode}``.
  A string ``Payload`` is sent as it is (not JSON-encoded again), a missing one
  as ``{}``. For ``.waitForTaskToken`` the envelope is the TaskSubmitted output.

A function error (``FunctionError`` in the response) fails the task with the
payload's ``errorType`` (``Lambda.Unknown`` without one) and the error
payload's JSON text as the cause. An error of the Lambda service fails it with
``Lambda.<ErrorCode>`` (e.g. ``Lambda.TooManyRequestsException``), which a
``Retry`` can match; a client-side SDK failure with ``Lambda.SdkClientException``.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.config import Config

from stepflow.data.safe_json import ORJSON_MAX_DEPTH, nesting
from stepflow.engine.resources import Pattern
from stepflow.errors import StatesErrorName
from stepflow.integrations.base import Integration, TaskRequest
from stepflow.integrations.errors import ErrorNames
from stepflow.integrations.metadata import sdk_metadata
from stepflow.integrations.optimized import arn_region
from stepflow.runtime.clients import TaskClients
from stepflow.runtime.outcome import TaskOutcome

READ_TIMEOUT_SECONDS = 910
"""Socket read timeout of the Lambda client: longer than Lambda's 900 s maximum."""

LAMBDA_CONFIG = Config(
    read_timeout=READ_TIMEOUT_SECONDS,
    connect_timeout=10,
    retries={"mode": "standard", "total_max_attempts": 1},
)
"""The Lambda client's configuration: a read timeout past Lambda's, no SDK retries (Retry's job)."""

INVOKE_FIELDS = ("FunctionName", "Qualifier", "InvocationType", "ClientContext", "LogType")
"""The ``Invoke`` request fields ``lambda:invoke`` passes on (``Payload`` is encoded apart)."""

LAMBDA = ErrorNames(prefix="Lambda", cause_service="AWSLambda")
"""``Lambda.<ErrorCode>`` (``Lambda.TooManyRequestsException``)."""

_ACTIONS: dict[str, frozenset[Pattern]] = {
    "function": frozenset({"request-response"}),
    "invoke": frozenset({"request-response", "wait-for-token"}),
}


class LambdaIntegration:
    """Invokes Lambda functions synchronously (``RequestResponse``) with the task's role."""

    service = "lambda"
    patterns: frozenset[Pattern] = frozenset({"request-response", "wait-for-token"})

    def check(self, action: str, pattern: Pattern) -> str | None:
        """Function ARNs run request-response; ``invoke`` also ``.waitForTaskToken``."""
        supported = _ACTIONS.get(action)
        if supported is None:
            return f"lambda has no action {action!r} (StepFlow runs lambda:invoke)"
        if pattern not in supported:
            return f"lambda:{action} does not support the {pattern} integration pattern"
        return None

    def call(self, request: TaskRequest, clients: TaskClients) -> TaskOutcome:
        """Invoke the function of ``request`` and report its result."""
        if request.action == "function":
            client = request.client(clients, "lambda")
            return _call_function(client, request.resource, request.parameters)
        parameters = request.parameters
        if not isinstance(parameters, dict) or not isinstance(parameters.get("FunctionName"), str):
            return TaskOutcome.failed(
                StatesErrorName.RUNTIME, "lambda:invoke needs a FunctionName (a string)"
            )
        client = request.client(clients, "lambda", arn_region(parameters["FunctionName"]))
        return _call_invoke(client, parameters)


INTEGRATIONS: tuple[Integration, ...] = (LambdaIntegration(),)
"""The Lambda integration (function ARNs and ``lambda:invoke``)."""


def payload_bytes(parameters: dict[str, Any]) -> bytes:
    """The ``Payload`` of a ``lambda:invoke`` request as sent: text as is, missing as ``{}``."""
    if "Payload" not in parameters:
        return b"{}"
    payload = parameters["Payload"]
    if isinstance(payload, str):
        return payload.encode("utf-8", "surrogatepass")
    return _dumps(payload)


def _call_function(client: Any, function_arn: str, task_input: Any) -> TaskOutcome:
    invoked = _invoke(client, FunctionName=function_arn, Payload=_dumps(task_input))
    if isinstance(invoked, TaskOutcome):
        return invoked
    _, payload = invoked
    return TaskOutcome.succeeded(payload)


def _call_invoke(client: Any, parameters: dict[str, Any]) -> TaskOutcome:
    call = {k: parameters[k] for k in INVOKE_FIELDS if k in parameters}
    invoked = _invoke(client, Payload=payload_bytes(parameters), **call)
    if isinstance(invoked, TaskOutcome):
        return invoked
    response, payload = invoked
    status = int(response.get("StatusCode", 200))
    output: dict[str, Any] = {
        "ExecutedVersion": response.get("ExecutedVersion", "$LATEST"),
        "Payload": payload,
        # botocore's header names, as the envelope has always had them
        **sdk_metadata(response, status, aws_header_names=False),
        "StatusCode": status,
    }
    return TaskOutcome.succeeded(output)


def _invoke(client: Any, **request: Any) -> tuple[dict[str, Any], Any] | TaskOutcome:
    """Call Invoke once: the response and its parsed payload, or the failed task's outcome.

    A failed call is ``Lambda.<Code>``; a function error is the payload's ``errorType``.
    """
    try:
        response: dict[str, Any] = client.invoke(**request)
    except Exception as exc:
        failed = LAMBDA.failure(exc)
        if failed is None:
            raise
        return failed
    payload = _read_payload(response)
    if isinstance(payload, TaskOutcome):
        return payload
    if response.get("FunctionError"):
        return _function_error(payload)
    return response, payload


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _read_payload(response: dict[str, Any]) -> Any:
    """The response payload, parsed as JSON (None when empty, text when not JSON).

    A payload that is not UTF-8 or nests past what any parser here reads is a
    :class:`TaskOutcome` (``States.Runtime``): raising instead would release the
    task for redelivery and invoke the function again, until the DLQ.
    """
    raw: Any = response.get("Payload")
    try:
        data = raw.read() if hasattr(raw, "read") else raw
    except Exception as exc:  # the connection broke while the payload was read
        if type(exc).__module__.startswith("botocore"):
            return TaskOutcome.failed("Lambda.SdkClientException", str(exc))
        raise
    if data is None:
        return None
    try:
        text = data.decode() if isinstance(data, bytes | bytearray) else str(data)
    except UnicodeDecodeError:
        return TaskOutcome.failed(StatesErrorName.RUNTIME, "The function's result is not UTF-8.")
    if not text:
        return None
    if nesting(text) > ORJSON_MAX_DEPTH:
        return TaskOutcome.failed(
            StatesErrorName.RUNTIME,
            f"The function's result nests deeper than {ORJSON_MAX_DEPTH} levels.",
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def _function_error(payload: Any) -> TaskOutcome:
    """A failed task from a function error payload, as Step Functions reports it."""
    error = "Lambda.Unknown"
    if isinstance(payload, dict) and payload.get("errorType"):
        error = str(payload["errorType"])
    cause = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return TaskOutcome.failed(error, cause)
