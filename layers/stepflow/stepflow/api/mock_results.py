"""TestState's ``fieldValidationMode``: a mocked Task result against the API's response model.

A Task whose resource names an API operation botocore has a model of (an
``aws-sdk:<service>:<action>`` integration, or an optimized one such as
``lambda:invoke``, ``sqs:sendMessage``, ``states:startExecution``) run
request-response: its mocked ``result`` is checked against the operation's
output shape, with member names as Step Functions writes them (``ExecutionArn``
for ``executionArn``):

- ``STRICT`` (the default): every required member is present, and every
  present member has the model's type (strings, timestamps and blobs are JSON
  strings, numbers numbers, lists arrays, structures and maps objects),
  enumeration, minimum length and range;
- ``PRESENT``: only the present members are checked;
- ``NONE``: nothing is.

Members the model does not know are allowed, as on AWS; so is anything under
``lambda:invoke``'s ``Payload`` (the function's JSON result). A ``.sync`` or
``.waitForTaskToken`` Task, an activity or a Lambda function ARN has no
response model and is not checked. A violation is AWS's ValidationException:
``Mock result schema validation error: Field 'StatusCode' must be a number``.
"""

from __future__ import annotations

from typing import Any

from stepflow.api.errors import ApiError, validation
from stepflow.integrations.aws_sdk import SdkOperation, resolve

_PREFIX = "arn:aws:states:::"
_OPTIMIZED_SERVICES = {"states": "sfn", "events": "eventbridge", "elasticmapreduce": "emr"}
"""Optimized integrations whose service is named otherwise in ``aws-sdk``."""
_ANY = {("lambda", "invoke"): frozenset({"Payload"})}
"""Members whose value is the called code's own JSON, not the model's type."""
_KINDS: dict[str, tuple[type[Any], str]] = {
    "string": (str, "a string"),
    "blob": (str, "a string"),
    "timestamp": (str, "a string"),
    "boolean": (bool, "a boolean"),
    "list": (list, "an array"),
    "structure": (dict, "an object"),
    "map": (dict, "an object"),
}
_NUMBERS = frozenset({"integer", "long", "float", "double"})


def check_mock_result(resource: Any, result: Any, mode: str | None) -> None:
    """ValidationException unless ``result`` fits ``resource``'s response model under ``mode``."""
    if mode == "NONE" or not isinstance(resource, str):
        return
    found = _operation(resource)
    if found is None:
        return
    operation, anything = found
    shape = operation.operation.output_shape
    if shape is None:
        return
    _Walker(strict=mode in (None, "STRICT"), anything=anything).value(shape, result, "result")


def _operation(resource: str) -> tuple[SdkOperation, frozenset[str]] | None:
    """The API operation a request-response Task resource calls, and its free members."""
    if not resource.startswith(_PREFIX):
        return None
    parts = resource[len(_PREFIX) :].split(":")
    if parts[0] == "aws-sdk" and len(parts) == 3:
        service, action = parts[1], parts[2]
    elif len(parts) == 2:
        service, action = _OPTIMIZED_SERVICES.get(parts[0], parts[0]), parts[1]
    else:
        return None
    if "." in action:  # .sync, .waitForTaskToken: the result is not the call's response
        return None
    operation = resolve(service, action)
    if isinstance(operation, str):
        return None
    return operation, _ANY.get((parts[0], action), frozenset())


class _Walker:
    def __init__(self, *, strict: bool, anything: frozenset[str]) -> None:
        self.strict, self.anything = strict, anything

    def value(self, shape: Any, value: Any, field: str) -> None:
        kind = shape.type_name
        if kind == "document":
            return
        if kind in _NUMBERS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _error(field, "must be a number")
            self._range(shape, value, field)
            return
        expected = _KINDS.get(kind)
        if expected is None:
            return
        python_type, described = expected
        if not isinstance(value, python_type):
            raise _error(field, f"must be {described}")
        self._contents(shape, value, field)

    def _contents(self, shape: Any, value: Any, field: str) -> None:
        kind = shape.type_name
        if kind == "structure":
            self._structure(shape, value)
        elif kind == "list":
            for item in value:
                self.value(shape.member, item, field)
        elif kind == "map":
            for item in value.values():
                self.value(shape.value, item, field)
        elif kind == "string" and shape.enum and value not in shape.enum:
            raise _error(field, "is not an expected value")
        if kind in ("string", "blob") and len(value) < shape.metadata.get("min", 0):
            raise _error(field, "is smaller than the minimum length")

    def _structure(self, shape: Any, value: dict[str, Any]) -> None:
        members = {_pascal(name): member for name, member in shape.members.items()}
        if self.strict:
            for name in shape.required_members:
                if _pascal(name) not in value:
                    raise validation(
                        f"Mock result schema validation error: Required field '{_pascal(name)}' "
                        "is missing"
                    )
        for key, item in value.items():
            member = members.get(key)
            if member is not None and key not in self.anything:
                self.value(member, item, key)

    @staticmethod
    def _range(shape: Any, value: float, field: str) -> None:
        minimum, maximum = shape.metadata.get("min"), shape.metadata.get("max")
        if minimum is not None and value < minimum:
            raise _error(field, "is less than the minimum value")
        if maximum is not None and value > maximum:
            raise _error(field, "exceeds the maximum value")


def _pascal(name: str) -> str:
    return name[:1].upper() + name[1:]


def _error(field: str, problem: str) -> ApiError:
    return validation(f"Mock result schema validation error: Field '{field}' {problem}")
