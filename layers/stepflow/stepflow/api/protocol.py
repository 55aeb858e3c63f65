"""The Step Functions JSON protocol: one HTTP request in, one response out.

``POST /`` with ``X-Amz-Target: AWSStepFunctions.<Operation>`` and a JSON
body. The parameters are checked against botocore's model of the service
(required members, types, minimum lengths and values) before the operation
runs, so an operation only ever sees well-typed input. Client errors are 400s
in the AWS shape ``{"__type": ..., "message": ...}``; only a failure of the
service itself is a 5xx.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

import botocore.session
import botocore.validate

from stepflow.api import constraints
from stepflow.api.errors import ApiError
from stepflow.data import safe_json
from stepflow.limits import DEFAULT_LIMITS, Limits

TARGET_PREFIX = "AWSStepFunctions."
CONTENT_TYPE = "application/x-amz-json-1.0"

Operation = Callable[[dict[str, Any]], dict[str, Any]]
Response = tuple[int, dict[str, str], str]


def handle(
    operations: Mapping[str, Operation],
    *,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    on_error: Callable[[Exception], None] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Response:
    """Run the operation the request names and return ``(status, headers, body)``.

    ``headers`` may use any case. ``on_error`` sees unexpected exceptions
    (answered with a 500 ``InternalFailure``) before they are swallowed.
    ``limits`` bound the body (``max_request_bytes``, ``max_json_depth``) and
    the members (see :mod:`stepflow.api.constraints`).
    """
    try:
        operation, params = parse_request(operations, method, path, headers, body, limits)
        return _reply(200, operations[operation](params))
    except ApiError as exc:
        return _reply(exc.status, exc.body())
    except Exception as exc:  # the service's own failure: never a traceback to the client
        if on_error is not None:
            on_error(exc)
        return _reply(500, {"__type": "InternalFailure", "message": "internal error"})


def parse_request(
    operations: Mapping[str, Operation],
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[str, dict[str, Any]]:
    """The operation name and its validated parameters, or an :class:`ApiError`.

    A body over ``limits.max_request_bytes`` is refused (413) before it is parsed.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    if method.upper() != "POST" or path not in ("/", ""):
        raise ApiError("UnknownOperationException", f"{method} {path} is not supported")
    target = lowered.get("x-amz-target", "")
    operation = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
    if operation not in operations:
        raise ApiError("UnknownOperationException", f"Unknown operation {target!r}")
    if len(body) > limits.max_request_bytes:
        raise ApiError(
            "RequestEntityTooLargeException",
            f"the request body is {len(body)} bytes, over the limit of "
            f"{limits.max_request_bytes} bytes",
            413,
        )
    try:
        params = safe_json.loads(body, limits.max_json_depth) if body.strip() else {}
    except safe_json.JsonRejectedError as exc:
        raise ApiError("SerializationException", f"the request body: {exc.reason}") from None
    if not isinstance(params, dict):
        raise ApiError("SerializationException", "the request body must be a JSON object")
    check_params(operation, params)
    constraints.check(operation, params, limits)
    return operation, params


def check_params(operation: str, params: dict[str, Any]) -> None:
    """Raise ValidationException unless ``params`` fit the operation's input shape."""
    model = _service_model()
    if operation not in model.operation_names:
        return  # an operation StepFlow adds; it validates its own input
    shape = model.operation_model(operation).input_shape
    if shape is None:
        return
    unknown = sorted(set(params) - set(shape.members))
    if unknown:
        raise ApiError("ValidationException", f"Unknown parameter(s): {', '.join(unknown)}")
    report = _validator().validate(params, shape)
    if report.has_errors():
        raise ApiError("ValidationException", report.generate_report())


@functools.cache
def _service_model() -> Any:
    session = botocore.session.get_session()
    return session.get_service_model("stepfunctions")


@functools.cache
def _validator() -> Any:
    return botocore.validate.ParamValidator()


def _reply(status: int, document: Mapping[str, Any]) -> Response:
    headers = {"Content-Type": CONTENT_TYPE}
    return status, headers, json.dumps(document, separators=(",", ":"))
