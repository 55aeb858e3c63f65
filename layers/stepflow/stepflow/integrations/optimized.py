"""The request checks the optimized integrations share (``dynamodb:*``, ``sns:publish``, ...).

The call itself is :func:`.api_call.call_api` (response with the SDK metadata,
errors named by :class:`.errors.ErrorNames`). Before it:

- a required member that is null or missing is the service's validation error
  (``Value null at 'item' failed to satisfy constraint: Member must not be null``);
  a value of the wrong JSON type, or a field the API does not have, fails before
  the call with ``States.Runtime``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from stepflow.integrations.base import TaskRequest
from stepflow.integrations.errors import (
    ErrorNames,
    null_violation,
    parameters_refused,
    violations_message,
)
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


def json_text(value: Any) -> str:
    """A string as is, anything else as compact JSON text (as Step Functions sends it)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def validation_error(violations: list[str], names: ErrorNames) -> TaskOutcome:
    """The service's answer to a request that breaks its constraints (before any call)."""
    return names.invalid(violations_message(violations))


def required_nulls(client: Any, operation: str, parameters: dict[str, Any]) -> list[str]:
    """AWS's violations for the required members of ``operation`` that are null or missing."""
    model = client.meta.service_model.operation_model(operation).input_shape
    required = list(getattr(model, "required_members", ()) or ())
    return [null_violation(name) for name in required if parameters.get(name) is None]


def unusable(request: TaskRequest, problem: str) -> TaskOutcome:
    """Parameters the integration cannot send (the wrong JSON type, an unknown field)."""
    return parameters_refused(request.parameters, problem, request.state_name)


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


def arn_region(arn: Any) -> str | None:
    """The region of an ARN (None: not an ARN, or none named)."""
    if not isinstance(arn, str) or not arn.startswith("arn:"):
        return None
    parts = arn.split(":")
    return parts[3] if len(parts) > 5 and parts[3] else None


def not_an_object(request: TaskRequest, what: str) -> TaskOutcome:
    """The parameters of a task that are no JSON object."""
    return unusable(request, f"The parameters of {what} must be a JSON object")
