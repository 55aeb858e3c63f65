"""What the optimized integrations (``dynamodb:*``, ``sns:publish``, ``events:putEvents``) share.

Step Functions performs an optimized integration with the AWS SDK for Java, so
its responses and errors have that SDK's shapes:

- a response is the API's fields plus ``SdkHttpMetadata`` (the HTTP headers and
  status) and ``SdkResponseMetadata`` (the request id);
- a service error is ``<Prefix>.<Exception>``: the exception class the service
  model names for the error code (``SNS.NotFoundException`` for SNS's
  ``NotFound``), else the SDK's base class (``DynamoDB.AmazonDynamoDBException``
  for DynamoDB's unmodelled ``ValidationException``), with the cause
  ``<message> (Service: ...; Status Code: ...; Error Code: ...; Request ID: ...; Proxy: null)``;
- a required member that is null or missing is the service's validation error
  (``Value null at 'item' failed to satisfy constraint: Member must not be null``);
  a value of the wrong JSON type, or a field the API does not have, fails before
  the call with ``States.Runtime``.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stepflow.errors import StatesErrorName
from stepflow.integrations.base import TaskRequest
from stepflow.integrations.errors import client_error
from stepflow.runtime.outcome import TaskOutcome

_TYPE_NAMES = {
    "str": "STRING",
    "dict": "OBJECT",
    "list": "ARRAY",
    "tuple": "ARRAY",
    "int": "NUMBER",
    "float": "NUMBER",
    "Decimal": "NUMBER",
    "bool": "BOOLEAN",
    "bytes": "STRING",
    "bytearray": "STRING",
    "datetime": "STRING",
}
_INVALID_TYPE = re.compile(r"Invalid type for parameter ([^,]+), value: .*?valid types: (.*)$")
_UNKNOWN = re.compile(r'Unknown parameter in [^:]*: "([^"]+)"')


@dataclass(frozen=True, slots=True)
class Service:
    """How one optimized integration names its errors.

    ``prefix`` starts the error name (``DynamoDB``), ``cause_name`` is the
    cause's ``Service:`` (``AmazonDynamoDBv2``), ``base_exception`` the SDK's
    base exception class (``AmazonDynamoDBException``), ``validation_code`` the
    service's error code for a constraint violation.
    """

    prefix: str
    cause_name: str
    base_exception: str
    validation_code: str


def sdk_output(response: dict[str, Any]) -> dict[str, Any]:
    """A boto3 response as Step Functions returns it: the fields, then the SDK metadata."""
    output = {k: jsonable(v) for k, v in response.items() if k != "ResponseMetadata"}
    metadata = response.get("ResponseMetadata") or {}
    headers = {_header_name(k): str(v) for k, v in (metadata.get("HTTPHeaders") or {}).items()}
    output["SdkHttpMetadata"] = {
        "AllHttpHeaders": {k: [v] for k, v in headers.items()},
        "HttpHeaders": headers,
        "HttpStatusCode": int(metadata.get("HTTPStatusCode") or 200),
    }
    output["SdkResponseMetadata"] = {"RequestId": str(metadata.get("RequestId") or "")}
    return output


def jsonable(value: Any) -> Any:
    """``value`` with bytes as base64 text and datetimes as ISO text (as JSON carries them)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def json_text(value: Any) -> str:
    """A string as is, anything else as compact JSON text (as Step Functions sends it)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _header_name(name: str) -> str:
    if name.lower() == "x-amzn-requestid":
        return "x-amzn-RequestId"
    if name.lower().startswith("x-"):
        return name.lower()
    return "-".join(part.capitalize() for part in name.split("-"))


def exception_name(client: Any, code: str, service: Service) -> str:
    """The SDK exception class of an error ``code`` (the base class when unmodelled)."""
    model = getattr(getattr(client, "meta", None), "service_model", None)
    for shape in getattr(model, "error_shapes", ()) or ():
        if getattr(shape, "error_code", None) == code or shape.name == code:
            return str(shape.name)
    return service.base_exception


def cause_text(message: str, service: Service, status: int, code: str, request_id: str) -> str:
    """Step Functions' cause of a service error (the SDK for Java v1 format)."""
    return (
        f"{message} (Service: {service.cause_name}; Status Code: {status}; Error Code: {code}; "
        f"Request ID: {request_id}; Proxy: null)"
    )


def service_error(exc: BaseException, client: Any, service: Service) -> TaskOutcome | None:
    """The outcome of a failed AWS call (None: ``exc`` is no AWS error)."""
    parsed = client_error(exc)
    if parsed is None:
        return None
    code, message, status, request_id = parsed
    name = exception_name(client, code, service)
    return TaskOutcome.failed(
        f"{service.prefix}.{name}", cause_text(message, service, status, code, request_id)
    )


def validation_error(violations: list[str], service: Service) -> TaskOutcome:
    """The service's answer to a request that breaks its constraints (before any call)."""
    count = len(violations)
    noun = "error" if count == 1 else "errors"
    message = f"{count} validation {noun} detected: " + "; ".join(violations)
    request_id = uuid.uuid4().hex.upper()
    return TaskOutcome.failed(
        f"{service.prefix}.{service.base_exception}",
        cause_text(message, service, 400, service.validation_code, request_id),
    )


def null_violation(member: str) -> str:
    """A required member that is null or missing, as AWS words it."""
    name = member[:1].lower() + member[1:]
    return f"Value null at '{name}' failed to satisfy constraint: Member must not be null"


def required_nulls(client: Any, operation: str, parameters: dict[str, Any]) -> list[str]:
    """AWS's violations for the required members of ``operation`` that are null or missing."""
    model = client.meta.service_model.operation_model(operation).input_shape
    required = list(getattr(model, "required_members", ()) or ())
    return [null_violation(name) for name in required if parameters.get(name) is None]


def unusable(request: TaskRequest, problem: str) -> TaskOutcome:
    """Parameters the integration cannot send (the wrong JSON type, an unknown field)."""
    state = f"the state {request.state_name!r}" if request.state_name else "the state"
    parameters = json_text(request.parameters)
    if len(parameters) > 1024:
        parameters = parameters[:1024] + "..."
    return TaskOutcome.failed(
        StatesErrorName.RUNTIME,
        f"An error occurred while executing {state}. The Parameters '{parameters}' "
        f"could not be used to start the Task: [{problem}]",
    )


def param_problem(exc: BaseException) -> str | None:
    """What botocore's parameter validation refused, as Step Functions says it (None: not that)."""
    if type(exc).__name__ != "ParamValidationError":
        return None
    kwargs = getattr(exc, "kwargs", None)
    report = kwargs.get("report") if isinstance(kwargs, dict) else None
    if not isinstance(report, str):
        return None
    problems: list[str] = []
    for line in report.splitlines():
        invalid = _INVALID_TYPE.search(line)
        unknown = _UNKNOWN.search(line)
        if invalid:
            field = invalid.group(1).split(".")[-1].split("[")[0]
            wanted = re.findall(r"<class '(?:[\w.]*\.)?(\w+)'>", invalid.group(2))
            kind = _TYPE_NAMES.get(wanted[0], wanted[0].upper()) if wanted else "VALUE"
            problems.append(f"The value for the field '{field}' must be a {kind}")
        elif unknown:
            problems.append(f"The field '{unknown.group(1)}' is not supported by Step Functions")
        elif line.strip():
            problems.append(line.strip())
    return ", ".join(problems) or report


def perform(
    request: TaskRequest,
    client: Any,
    service: Service,
    call: Callable[[], dict[str, Any]],
) -> TaskOutcome:
    """Make ``call``; its response as Step Functions returns it, or the failure as it names it."""
    try:
        response = call()
    except Exception as exc:
        problem = param_problem(exc)
        if problem is not None:
            return unusable(request, problem)
        failed = service_error(exc, client, service)
        if failed is not None:
            return failed
        if type(exc).__module__.startswith("botocore"):  # no connection, no credentials
            return TaskOutcome.failed(f"{service.prefix}.SdkClientException", str(exc))
        raise  # ours: a bug, not the task's failure
    return TaskOutcome.succeeded(sdk_output(response))


def arn_region(arn: Any) -> str | None:
    """The region of an ARN (None: not an ARN, or none named)."""
    if not isinstance(arn, str) or not arn.startswith("arn:"):
        return None
    parts = arn.split(":")
    return parts[3] if len(parts) > 5 and parts[3] else None


def not_an_object(request: TaskRequest, what: str) -> TaskOutcome:
    """The parameters of a task that are no JSON object."""
    return unusable(request, f"The parameters of {what} must be a JSON object")
