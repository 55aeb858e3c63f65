"""One AWS API call as Step Functions makes it, for every integration that is one.

The integrations that are an API call with the API's names (``aws-sdk:*``,
``dynamodb``, ``sns``, ``sqs``, ``events``, ``athena``, ``glue``, ``batch``,
``ecs``, ``bedrock``) all run on :func:`call_api`.
:func:`call_api` translates the task's parameters through the operation's model
(:func:`.aws_sdk_shapes.to_request`), makes the call once with the task's
client, and returns the response as Step Functions returns it
(:func:`.aws_sdk_shapes.to_output`) or the failure as Step Functions names it
(:class:`.errors.ErrorNames`). What AWS shows differently between the optimized
and the ``aws-sdk`` integrations is a :class:`Style`:

- ``output``: timestamps and blobs as the SDK for Java v1 (optimized) or v2
  (``aws-sdk``) writes them;
- ``metadata``: ``SdkHttpMetadata``/``SdkResponseMetadata`` added (``dynamodb``,
  ``sns``, ``sqs``, ``events``);
- ``invalid``: parameters botocore refuses (a wrong type, an unknown field) fail
  with ``States.Runtime`` before the call (optimized), or as the service's
  validation error (``aws-sdk``: a missing required member in AWS's words).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from botocore import xform_name
from botocore.exceptions import BotoCoreError, ParamValidationError

from stepflow.errors import StatesErrorName
from stepflow.integrations.aws_sdk_shapes import SDK_V1, SDK_V2, Output, to_output, to_request
from stepflow.integrations.base import TaskRequest
from stepflow.integrations.errors import (
    ErrorNames,
    null_violation,
    parameters_refused,
    violations_message,
)
from stepflow.integrations.http_common import BadParameters
from stepflow.integrations.metadata import sdk_metadata
from stepflow.runtime.outcome import TaskOutcome

MAX_BODY_BYTES = 64 * 1024 * 1024
"""The most of a streaming response body read into memory (far above any payload limit:
a larger body fails the task with ``States.DataLimitExceeded`` without being read)."""

Prepare = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns the translated parameters into the API call's (raises :class:`BadParameters`)."""
Finish = Callable[[dict[str, Any]], Any]
"""Turns the API's response into the task's output (instead of :func:`to_output`)."""


@dataclass(frozen=True, slots=True)
class Style:
    """What AWS shows differently for one family of integrations (see the module docstring)."""

    output: Output
    metadata: bool
    invalid: Literal["runtime", "service"]


OPTIMIZED = Style(output=SDK_V1, metadata=True, invalid="runtime")
"""``dynamodb``, ``sns``, ``sqs``, ``events``: the response with the SDK metadata."""

ONE_CALL = Style(output=SDK_V1, metadata=False, invalid="runtime")
"""``athena``, ``glue``, ``batch``, ``ecs``, ``bedrock``: the response alone."""

AWS_SDK = Style(output=SDK_V2, metadata=False, invalid="service")
"""``aws-sdk:*``."""


def call_api(
    request: TaskRequest,
    client: Any,
    operation: str,
    parameters: dict[str, Any],
    names: ErrorNames,
    style: Style,
    *,
    prepare: Prepare | None = None,
    finish: Finish | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> TaskOutcome:
    """Call ``operation`` (``PutItem``) once with ``parameters`` in Step Functions' spelling."""
    service_model = getattr(getattr(client, "meta", None), "service_model", None)
    model = service_model.operation_model(operation) if service_model is not None else None
    try:  # a client without a model (a test's fake) gets the parameters as they are
        api = to_request(getattr(model, "input_shape", None), parameters)
        if prepare is not None:
            api = prepare(api)
        response = dict(getattr(client, xform_name(operation))(**api) or {})
    except BadParameters as bad:
        return bad.outcome(request.parameters)
    except ParamValidationError as exc:
        return _refused(request, exc, names, style)
    except Exception as exc:  # an AWS error is the task's; anything else is ours
        failed = names.failure(exc, service_model)
        if failed is None:
            raise
        return failed
    streamed = _read_bodies(operation, response, max_body_bytes, names)
    if isinstance(streamed, TaskOutcome):
        return streamed
    if finish is not None:
        return TaskOutcome.succeeded(finish(response))
    if style.output.blobs == "text":  # a streamed body is read as a UTF-8 string, as AWS does
        for key in streamed:
            response[key] = response[key].decode("utf-8", errors="replace")
    output = to_output(getattr(model, "output_shape", None), response, style.output)
    if style.metadata:
        output.update(sdk_metadata(response))
    return TaskOutcome.succeeded(output)


def _read_bodies(
    operation: str, response: dict[str, Any], limit: int, names: ErrorNames
) -> list[str] | TaskOutcome:
    """Read each streaming body (S3 GetObject's ``Body``); one too large to hold is not.

    Returns the keys read, or the task's failure.
    """
    streamed: list[str] = []
    for key, value in response.items():
        if hasattr(value, "read"):
            try:
                data = value.read(limit + 1)
            except BotoCoreError as exc:  # the connection broke while the body was read
                return TaskOutcome.failed(f"{names.prefix}.SdkClientException", str(exc))
            if len(data) > limit:
                return TaskOutcome.failed(
                    StatesErrorName.DATA_LIMIT_EXCEEDED.value,
                    f"The {operation} response's {key} is larger than {limit} bytes.",
                )
            response[key] = data
            streamed.append(key)
    return streamed


def _refused(
    request: TaskRequest, exc: ParamValidationError, names: ErrorNames, style: Style
) -> TaskOutcome:
    """Parameters botocore refuses, as Step Functions reports them (see :class:`Style`)."""
    if style.invalid == "runtime":
        problem = param_problem(exc) or str(exc)
        return parameters_refused(request.parameters, problem, request.state_name)
    report = str(exc.kwargs.get("report") or exc)
    lines = [line for line in report.splitlines() if line.strip()]
    missing = [
        line.split('"')[1]
        for line in lines
        if line.startswith("Missing required parameter") and line.count('"') >= 2
    ]
    if missing and len(missing) == len(lines):
        return names.invalid(violations_message([null_violation(name) for name in missing]))
    return names.invalid(report)


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
