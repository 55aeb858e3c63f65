"""``aws-sdk:<service>:<action>``: any API botocore knows, called as Step Functions calls it.

The service is named as Step Functions names it (:mod:`.aws_sdk_names`), the
action is the API operation in camelCase (``getObject``) and the parameters are
the API's members (``Bucket``, ``Key``). The response is returned as Step
Functions returns it (:mod:`.aws_sdk_shapes`), and a failure is named
``<Service>.<Exception>`` (``S3.NoSuchKeyException``, ``Sfn.InvalidTokenException``):
the modeled error shape with the ``Exception`` suffix Step Functions adds, or
``<Service>.<Service>Exception`` (``DynamoDb.DynamoDbException``) for an error
the model does not name, with the SDK for Java's cause text.

botocore's service models are loaded on first use of a service, and cached.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from stepflow.engine.resources import Pattern
from stepflow.errors import StatesErrorName
from stepflow.integrations.aws_sdk_names import (
    boto_name,
    error_prefix,
    operation_name,
)
from stepflow.integrations.aws_sdk_shapes import to_output, to_request
from stepflow.integrations.base import TaskRequest
from stepflow.integrations.errors import client_error
from stepflow.runtime.clients import TaskClients
from stepflow.runtime.outcome import TaskOutcome

SERVICE = "aws-sdk:*"
"""The registry key of the generic SDK integration (every ``aws-sdk:<service>``)."""

PATTERNS: frozenset[Pattern] = frozenset({"request-response", "wait-for-token"})
"""AWS runs SDK integrations request-response or ``.waitForTaskToken``, never ``.sync``."""


MAX_ACTION = 128
"""The longest action name looked up (the longest AWS API operation name is far shorter)."""

MAX_BODY_BYTES = 64 * 1024 * 1024
"""The most of a streaming response body read into memory (far above any payload limit:
a larger body fails the task with ``States.DataLimitExceeded`` without being read)."""


@dataclass(frozen=True, slots=True)
class SdkOperation:
    """One API operation reached through ``aws-sdk``: its botocore model and names."""

    service: str
    boto_service: str
    operation: Any
    service_model: Any
    prefix: str

    @property
    def method(self) -> str:
        """The boto3 client method of the operation (``get_object``)."""
        from botocore import xform_name

        return str(xform_name(self.operation.name))


@lru_cache(maxsize=64)
def _service_model(boto_service: str) -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model(boto_service)


def resolve(service: str, action: str) -> SdkOperation | str:
    """The operation of ``aws-sdk:<service>:<action>``, or why there is none."""
    boto_service = boto_name(service)
    if boto_service is None:
        return f"the AWS SDK has no service {service[:64]!r}"
    if len(action) > MAX_ACTION:  # no API has one; and the cache holds no hostile strings
        return f"the AWS SDK service {service!r} has no action {action[:64]!r}..."
    return _resolve(service, boto_service, action)


@lru_cache(maxsize=1024)
def _resolve(service: str, boto_service: str, action: str) -> SdkOperation | str:
    model = _service_model(boto_service)
    wanted = operation_name(action)
    if action[:1] != action[:1].lower() or wanted not in model.operation_names:
        return f"the AWS SDK service {service!r} has no action {action!r}"
    prefix = error_prefix(model.metadata.get("serviceId") or service)
    return SdkOperation(service, boto_service, model.operation_model(wanted), model, prefix)


def problem(service: str, action: str) -> str | None:
    """Why ``aws-sdk:<service>:<action>`` names no operation (None: it names one)."""
    found = resolve(service, action)
    return found if isinstance(found, str) else None


class AwsSdkIntegration:
    """The generic ``aws-sdk:<service>:<action>`` integration over boto3."""

    service = SERVICE
    patterns = PATTERNS

    def check(self, action: str, pattern: Pattern) -> str | None:
        """Why ``<service>:<action>`` (as the registry passes it) cannot run; no I/O."""
        service, _, name = action.partition(":")
        return problem(service, name)

    def call(self, request: TaskRequest, clients: TaskClients) -> TaskOutcome:
        """Call the operation with the task's parameters; the response as Step Functions has it."""
        from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

        service = request.service.removeprefix("aws-sdk:")
        found = resolve(service, request.action)
        if isinstance(found, str):  # the invoker checks first; kept for direct callers
            raise ValueError(found)
        client = request.client(clients, found.boto_service)
        params = request.parameters if request.parameters is not None else {}
        if not isinstance(params, dict):
            return _validation_failure(found, "The task's parameters must be a JSON object")
        try:
            kwargs = to_request(found.operation.input_shape, params)
            response = getattr(client, found.method)(**kwargs)
        except ClientError as exc:
            return sdk_failure(found, exc)
        except ParamValidationError as exc:
            return _validation_failure(found, _validation_message(exc))
        except BotoCoreError as exc:
            return TaskOutcome.failed(f"{found.prefix}.SdkClientException", str(exc))
        return _outcome(found, dict(response or {}))


def _outcome(operation: SdkOperation, response: dict[str, Any]) -> TaskOutcome:
    """The response as Step Functions returns it; a body too large to hold is not read."""
    for key, value in response.items():
        if hasattr(value, "read"):  # a streaming body (S3 GetObject's Body)
            from botocore.exceptions import BotoCoreError

            try:
                data = value.read(MAX_BODY_BYTES + 1)
            except BotoCoreError as exc:  # the connection broke while the body was read
                return TaskOutcome.failed(f"{operation.prefix}.SdkClientException", str(exc))
            if len(data) > MAX_BODY_BYTES:
                return TaskOutcome.failed(
                    StatesErrorName.DATA_LIMIT_EXCEEDED.value,
                    f"The {operation.operation.name} response's {key} is larger than "
                    f"{MAX_BODY_BYTES} bytes.",
                )
            response[key] = data
    return TaskOutcome.succeeded(to_output(operation.operation.output_shape, response))


def exception_name(operation: SdkOperation, code: str) -> str:
    """Step Functions' error name for the service error ``code`` of ``operation``'s service."""
    shape = _error_shape(operation.service_model, code)
    if shape is None:
        return f"{operation.prefix}.{operation.prefix}Exception"
    return f"{operation.prefix}.{shape if shape.endswith('Exception') else shape + 'Exception'}"


def _error_shape(model: Any, code: str) -> str | None:
    for shape in model.error_shapes:
        declared = (shape.metadata.get("error") or {}).get("code")
        if code in (shape.name, declared):
            return str(shape.name)
    return None


def sdk_failure(operation: SdkOperation, exc: BaseException) -> TaskOutcome:
    """The failed outcome of a service error (a botocore ``ClientError``)."""
    parsed = client_error(exc)
    if parsed is None:
        return TaskOutcome.failed(f"{operation.prefix}.SdkClientException", str(exc))
    code, message, status, request_id = parsed
    host = ((getattr(exc, "response", None) or {}).get("ResponseMetadata") or {}).get("HostId")
    return TaskOutcome.failed(
        exception_name(operation, code), cause(operation.prefix, message, status, request_id, host)
    )


def cause(prefix: str, message: str, status: int, request_id: str, host: str | None = None) -> str:
    """The SDK for Java v2 exception text Step Functions reports as the cause."""
    extended = f", Extended Request ID: {host}" if host else ""
    return (
        f"{message} (Service: {prefix}, Status Code: {status}, Request ID: {request_id}"
        f"{extended}) (SDK Attempt Count: 1)"
    )


def _validation_failure(operation: SdkOperation, message: str) -> TaskOutcome:
    """A request the service would refuse with a 400 validation error (no modeled name)."""
    return TaskOutcome.failed(
        f"{operation.prefix}.{operation.prefix}Exception",
        cause(operation.prefix, message, 400, str(uuid.uuid4())),
    )


def _validation_message(exc: BaseException) -> str:
    """The parameter report of botocore in the services' words where it has them.

    A missing required member reads as AWS's validation error (``Value null at
    'item' failed to satisfy constraint: Member must not be null``); anything
    else keeps botocore's report.
    """
    report = str(getattr(exc, "kwargs", {}).get("report") or exc)
    missing = [
        line.split('"')[1]
        for line in report.splitlines()
        if line.startswith("Missing required parameter") and line.count('"') >= 2
    ]
    if missing and len(missing) == len([line for line in report.splitlines() if line.strip()]):
        parts = [
            f"Value null at '{name[:1].lower() + name[1:]}' failed to satisfy constraint: "
            "Member must not be null"
            for name in missing
        ]
        count = len(parts)
        return f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(parts)
    return report


INTEGRATIONS = (AwsSdkIntegration(),)
"""The integrations of this module, for :mod:`stepflow.integrations.catalog`."""
