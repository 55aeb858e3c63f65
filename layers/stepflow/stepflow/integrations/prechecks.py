"""Parameters an optimized integration cannot send, found before the task is scheduled.

AWS refuses a request whose values have the wrong JSON type, or that names a
field the API does not have, before it schedules the task: the state fails
with ``States.Runtime`` ("The Parameters '...' could not be used to start the
Task: [...]") and the history has no Task event. :func:`shape_problem` finds
those problems with botocore's parameter validator on the operation's input
shape, read from botocore's bundled service model (loaded once per process,
never over the network). Missing required members and constraint violations
(lengths, patterns) are not reported here: AWS finds them when the task runs
(the service's ``ValidationException``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from botocore.exceptions import ParamValidationError
from botocore.loaders import create_loader
from botocore.model import ServiceModel, Shape
from botocore.validate import ParamValidator

from stepflow.integrations.api_call import param_problem

_REPORTED = ("invalid type", "unknown field")


@lru_cache(maxsize=32)
def input_shape(service: str, operation: str) -> Shape:
    """The input shape of ``operation`` (``PutItem``) of botocore's ``service`` model."""
    model = ServiceModel(create_loader().load_service_model(service, "service-2"), service)
    shape = model.operation_model(operation).input_shape
    assert shape is not None, f"{service}:{operation} takes no input"
    return shape


def shape_problem(service: str, operation: str, request: dict[str, Any]) -> str | None:
    """Wrong JSON types and unknown fields of ``request``, as Step Functions words them.

    ``request`` is what the integration would send (null members left out); it
    is only read. None: nothing AWS refuses before scheduling.
    """
    errors = ParamValidator().validate(request, input_shape(service, operation))
    found = [e for e in getattr(errors, "_errors", ()) if e[0] in _REPORTED]
    if not found:
        return None
    lines = []
    for kind, name, details in found:
        where = str(name).lstrip(".") or "input"
        if kind == "invalid type":
            valid = ", ".join(str(t) for t in details.get("valid_types", ()))
            lines.append(f"Invalid type for parameter {where}, value: -, valid types: {valid}")
        else:
            unknown = details.get("unknown_param")
            lines.append(f'Unknown parameter in {where}: "{unknown}", must be one of: -')
    return param_problem(ParamValidationError(report="\n".join(lines)))


def without_nulls(parameters: dict[str, Any]) -> dict[str, Any]:
    """The top-level members that are not null (a shallow copy: the values are shared)."""
    return {k: v for k, v in parameters.items() if v is not None}
