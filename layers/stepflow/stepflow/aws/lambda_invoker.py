"""Inline Lambda tasks: the stepper's :data:`~stepflow.runtime.TaskInvoker` for Lambda resources.

Two resources are supported, as in Step Functions:

- ``arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]``: the state's
  input is the payload; the output is the function's parsed response;
- ``arn:aws:states:::lambda:invoke``: the input holds the ``Invoke`` request
  (``FunctionName``, ``Payload``, ``Qualifier``, ``InvocationType``,
  ``ClientContext``); the output is the response envelope
  ``{ExecutedVersion, Payload, SdkHttpMetadata, SdkResponseMetadata, StatusCode}``.

A function error (``FunctionError`` in the response) fails the task with the
payload's ``errorType`` (``Lambda.Unknown`` without one) and the error
payload's JSON text as the cause. An error returned by the Lambda service
fails it with ``Lambda.<ErrorCode>`` (e.g. ``Lambda.TooManyRequestsException``),
which a ``Retry`` can match. Any other resource fails with
``States.TaskFailed``.

The Lambda client comes from the task clients (:mod:`stepflow.aws.role_clients`):
the call runs with the task's role (``role_arn`` of the task message), and a
role that cannot be used fails the task.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.config import Config

from stepflow.aws.role_clients import RoleClients
from stepflow.data.safe_json import ORJSON_MAX_DEPTH, nesting
from stepflow.runtime.clients import FixedClients, TaskCallRefused, TaskClients
from stepflow.runtime.outcome import TaskOutcome

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
"""The optimised Lambda service integration."""

READ_TIMEOUT_SECONDS = 910
"""Socket read timeout of the default client: longer than Lambda's 900 s maximum."""

_INVOKE_FIELDS = ("FunctionName", "Qualifier", "InvocationType", "ClientContext", "LogType")


LAMBDA_CONFIG = Config(
    read_timeout=READ_TIMEOUT_SECONDS,
    connect_timeout=10,
    retries={"mode": "standard", "total_max_attempts": 1},
)
"""The Lambda client's configuration: a read timeout past Lambda's, no SDK retries (Retry's job)."""


class LambdaInvoker:
    """Runs inline Lambda tasks synchronously (``RequestResponse``).

    ``clients`` is the task client factory, or one Lambda client used whatever
    the role (tests); None: a :class:`RoleClients` on the process's credentials.
    """

    def __init__(self, clients: TaskClients | Any = None, *, region: str | None = None) -> None:
        if clients is None:
            clients = RoleClients(
                assume_roles=False, region=region or "us-east-1", configs={"lambda": LAMBDA_CONFIG}
            )
        elif not isinstance(clients, TaskClients):
            clients = FixedClients(**{"lambda": clients})
        self._clients: TaskClients = clients

    def __call__(self, body: dict[str, Any]) -> TaskOutcome:
        """Run the task described by an inline task message ``body``."""
        resource = str(body.get("resource", ""))
        task_input = body.get("input")
        if resource == LAMBDA_INVOKE or resource.startswith(LAMBDA_INVOKE + "."):
            if resource != LAMBDA_INVOKE:  # .waitForTaskToken is a deferred task
                return _unsupported(resource)
            target = task_input.get("FunctionName") if isinstance(task_input, dict) else None
            call = self._bind(body, target if isinstance(target, str) else "")
            return (
                call
                if isinstance(call, TaskOutcome)
                else self._invoke_integration(call, task_input)
            )
        if _is_function_arn(resource):
            call = self._bind(body, resource)
            return (
                call
                if isinstance(call, TaskOutcome)
                else self._invoke_function(call, resource, task_input)
            )
        return _unsupported(resource)

    def _bind(self, body: dict[str, Any], function: str) -> Any:
        """The Lambda client of the task's role (in the function's region), or a failed outcome."""
        parts = function.split(":")
        region = parts[3] if function.startswith("arn:") and len(parts) > 3 and parts[3] else None
        try:
            return self._clients.for_task(
                "lambda",
                str(body.get("role_arn") or ""),
                region,
                execution=str(body.get("execution_arn") or ""),
            )
        except TaskCallRefused as refused:
            return refused.outcome()

    def _invoke_function(self, client: Any, function_arn: str, task_input: Any) -> TaskOutcome:
        response = _invoke(client, FunctionName=function_arn, Payload=_dumps(task_input))
        if isinstance(response, TaskOutcome):
            return response
        payload = _read_payload(response)
        if isinstance(payload, TaskOutcome):
            return payload
        if response.get("FunctionError"):
            return _function_error(payload)
        return TaskOutcome.succeeded(payload)

    def _invoke_integration(self, client: Any, task_input: Any) -> TaskOutcome:
        if not isinstance(task_input, dict) or "FunctionName" not in task_input:
            return TaskOutcome.failed("States.Runtime", "lambda:invoke needs a FunctionName")
        request = {k: task_input[k] for k in _INVOKE_FIELDS if k in task_input}
        if "Payload" in task_input:
            request["Payload"] = _dumps(task_input["Payload"])
        response = _invoke(client, **request)
        if isinstance(response, TaskOutcome):
            return response
        payload = _read_payload(response)
        if isinstance(payload, TaskOutcome):
            return payload
        if response.get("FunctionError"):
            return _function_error(payload)
        metadata = response.get("ResponseMetadata", {})
        headers = {str(k): str(v) for k, v in metadata.get("HTTPHeaders", {}).items()}
        status = int(response.get("StatusCode", metadata.get("HTTPStatusCode", 200)))
        output = {
            "ExecutedVersion": response.get("ExecutedVersion", "$LATEST"),
            "Payload": payload,
            "SdkHttpMetadata": {
                "AllHttpHeaders": {k: [v] for k, v in headers.items()},
                "HttpHeaders": headers,
                "HttpStatusCode": int(metadata.get("HTTPStatusCode", status)),
            },
            "SdkResponseMetadata": {"RequestId": str(metadata.get("RequestId", ""))},
            "StatusCode": status,
        }
        return TaskOutcome.succeeded(output)


def _invoke(client: Any, **request: Any) -> dict[str, Any] | TaskOutcome:
    """Call Invoke; a failed call becomes a failed task outcome (``Lambda.<Code>``)."""
    try:
        response: dict[str, Any] = client.invoke(**request)
    except Exception as exc:
        error = getattr(exc, "response", None)
        if isinstance(error, dict) and "Error" in error:
            code = str(error["Error"].get("Code", "ServiceException"))
            message = str(error["Error"].get("Message", exc))
            status = error.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
            cause = f"{message} (Service: AWSLambda; Status Code: {status}; Error Code: {code})"
            return TaskOutcome.failed(f"Lambda.{code}", cause)
        if type(exc).__module__.startswith("botocore"):
            return TaskOutcome.failed("Lambda.SdkClientException", str(exc))
        raise
    return response


def _is_function_arn(resource: str) -> bool:
    parts = resource.split(":")
    return len(parts) in (7, 8) and parts[:3] == ["arn", "aws", "lambda"] and parts[5] == "function"


def _unsupported(resource: str) -> TaskOutcome:
    return TaskOutcome.failed("States.TaskFailed", f"resource not supported yet: {resource}")


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _read_payload(response: dict[str, Any]) -> Any:
    """The response payload, parsed as JSON (None when empty, text when not JSON).

    A payload that is not UTF-8 or nests past what any parser here reads is a
    :class:`TaskOutcome` (``States.Runtime``): raising instead would release the
    task for redelivery and invoke the function again, until the DLQ.
    """
    raw: Any = response.get("Payload")
    data = raw.read() if hasattr(raw, "read") else raw
    if data is None:
        return None
    try:
        text = data.decode() if isinstance(data, bytes | bytearray) else str(data)
    except UnicodeDecodeError:
        return TaskOutcome.failed("States.Runtime", "The function's result is not UTF-8.")
    if not text:
        return None
    if nesting(text) > ORJSON_MAX_DEPTH:
        return TaskOutcome.failed(
            "States.Runtime",
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
