"""The constraints botocore's model declares on every input member, and StepFlow's limits.

botocore's own validator checks types, required members and minimums only
(maximums may change on the server). Step Functions enforces the rest, so
this module walks an operation's input shape and applies, for every member,
what the model declares: the maximum length of strings and lists, the range
of numbers, enumerations and patterns. The members StepFlow's
:class:`~stepflow.limits.Limits` govern are checked against the configured
limit instead of the model's, with the operation's own error code:

- ``SensitiveData`` (execution input, task output, TestState's input,
  variables and context): JSON text of at most ``max_payload_bytes`` UTF-8
  bytes, nested at most ``max_json_depth`` levels, without lone surrogates;
  ``InvalidExecutionInput`` / ``InvalidOutput`` where the operation declares them
  (SendTaskSuccess's output is bounded by the request size only: a larger result
  fails the task with ``States.DataLimitExceeded``);
- ``Definition``: at most ``max_definition_bytes`` UTF-8 bytes, no deeper than
  ``max_json_depth``; ``InvalidDefinition`` where the operation declares it;
- ``SensitiveError`` / ``SensitiveCause``: ``max_error_length`` /
  ``max_cause_length`` characters;
- ``TagList``: at most :data:`MAX_TAGS` tags (``TooManyTags``).

Every other violation is a ``ValidationException`` worded as AWS words it:
``1 validation error detected: Value at 'error' failed to satisfy constraint:
Member must have length less than or equal to 256`` (members the model does not
mark sensitive show their value: ``Value 'xx...' at 'name'``). A name that is
too long is such a ValidationException, as on AWS; a name with characters AWS
refuses is ``InvalidName``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import botocore.session

from stepflow.api.errors import ApiError
from stepflow.data import safe_json
from stepflow.limits import Limits

MAX_TAGS = 50
"""Tags per resource (AWS: 50)."""

_JSON_ERRORS = ("InvalidExecutionInput", "InvalidOutput")
_NAMES = frozenset({"Name", "CharacterRestrictedName"})  # bad characters: InvalidName
_SHOWN = 256  # longer values are left out of the message
_OWN_ENUMS = frozenset({"StateMachineType"})  # the operation answers StateMachineTypeNotSupported
_PATTERN_FIXES = ((r"\p{ASCII}", r"[\x00-\x7f]"),)


def check(operation: str, params: dict[str, Any], limits: Limits) -> None:
    """Raise the operation's 4xx :class:`ApiError` unless ``params`` meet every constraint."""
    model = _service_model()
    if operation not in model.operation_names:
        return
    op = model.operation_model(operation)
    if op.input_shape is None:
        return
    errors = {shape.name for shape in op.error_shapes}
    # SendTaskSuccess's output over the payload limit fails the task, not the request.
    payload_limit = None if operation == "SendTaskSuccess" else limits.max_payload_bytes
    _Walker(errors, limits, payload_limit).structure(op.input_shape, params, "")


class _Walker:
    def __init__(self, errors: set[str], limits: Limits, payload_limit: int | None) -> None:
        self.errors, self.limits, self.payload_limit = errors, limits, payload_limit

    def structure(self, shape: Any, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            return
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                self.member(member, value[name], f"{path}{name}")

    def member(self, shape: Any, value: Any, path: str) -> None:
        kind = shape.type_name
        if shape.name == "TagList" and isinstance(value, list) and len(value) > MAX_TAGS:
            code = "TooManyTags" if "TooManyTags" in self.errors else "ValidationException"
            raise ApiError(code, f"Too many tags: {len(value)} (at most {MAX_TAGS})")
        if kind == "structure":
            self.structure(shape, value, f"{path}.")
        elif kind == "list" and isinstance(value, list):
            self.size(shape, len(value), path, "length")
            for index, item in enumerate(value):
                self.member(shape.member, item, f"{path}.{index + 1}.member")
        elif kind == "map" and isinstance(value, dict):
            for key, item in value.items():
                self.member(shape.value, item, f"{path}.{key}")
        elif kind == "string" and isinstance(value, str):
            self.string(shape, value, path)
        elif kind in ("integer", "long", "float", "double") and isinstance(value, int | float):
            self.size(shape, value, path, "value")

    def string(self, shape: Any, value: str, path: str) -> None:
        if shape.name == "SensitiveData":
            self.json_text(value, path)
            return
        if shape.name == "Definition":
            self.definition(value, path)
            return
        shown = None if shape.metadata.get("sensitive") else value
        if safe_json.has_surrogate(value):
            raise _violation(path, "not contain lone surrogates", None, self._name_code(shape))
        governed = {
            "SensitiveError": self.limits.max_error_length,
            "SensitiveCause": self.limits.max_cause_length,
        }
        maximum = governed.get(shape.name, shape.metadata.get("max"))
        if maximum is not None and len(value) > maximum:
            raise _violation(path, f"have length less than or equal to {maximum}", shown)
        enum = shape.enum
        if enum and value not in enum and shape.name not in _OWN_ENUMS:
            raise _violation(path, f"satisfy enum value set: [{', '.join(enum)}]", shown)
        pattern = shape.metadata.get("pattern")
        if pattern is not None and not _compiled(pattern).fullmatch(value):
            constraint = f"satisfy regular expression pattern: {pattern}"
            raise _violation(path, constraint, shown, self._name_code(shape))

    def _name_code(self, shape: Any) -> str | None:
        """``InvalidName`` for a name's characters, where the operation declares it."""
        return "InvalidName" if shape.name in _NAMES and "InvalidName" in self.errors else None

    def size(self, shape: Any, amount: float, path: str, what: str) -> None:
        maximum = shape.metadata.get("max")
        if maximum is not None and amount > maximum:
            raise _violation(path, f"have {what} less than or equal to {maximum}", amount)
        minimum = shape.metadata.get("min")
        if minimum is not None and amount < minimum:
            raise _violation(path, f"have {what} greater than or equal to {minimum}", amount)

    def json_text(self, value: str, path: str) -> None:
        code = next((c for c in _JSON_ERRORS if c in self.errors), "ValidationException")
        size = _utf8_size(value)
        if self.payload_limit is not None and size > self.payload_limit:
            raise ApiError(
                code,
                f"Invalid {path}: {size} bytes as UTF-8, over the limit of "
                f"{self.payload_limit} bytes",
            )
        try:
            safe_json.loads(value, self.limits.max_json_depth)
        except safe_json.JsonRejectedError as exc:
            raise ApiError(code, f"Invalid {path}: {exc.reason}") from None

    def definition(self, value: str, path: str) -> None:
        code = "InvalidDefinition" if "InvalidDefinition" in self.errors else "ValidationException"
        size = _utf8_size(value)
        if size > self.limits.max_definition_bytes:
            raise ApiError(
                code,
                f"Invalid State Machine Definition: {size} bytes as UTF-8, over the limit of "
                f"{self.limits.max_definition_bytes} bytes",
            )
        try:
            safe_json.loads(value, self.limits.max_json_depth)
        except safe_json.JsonRejectedError as exc:
            if "valid JSON" in exc.reason:
                return  # malformed but shallow: the definition parser reports it in detail
            raise ApiError(code, f"Invalid State Machine Definition: {exc.reason}") from None


def _utf8_size(value: str) -> int:
    return len(value.encode("utf-8", "surrogatepass"))


def _violation(
    path: str, constraint: str, value: object = None, code: str | None = None
) -> ApiError:
    """AWS's wording; the value is shown unless it is sensitive (None) or long."""
    if code is not None:
        return ApiError(code, f"Invalid Name: Value at '{path}' failed to satisfy constraint")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    text = isinstance(value, str) and len(value) <= _SHOWN
    shown = f"Value '{value}' at" if number or text else "Value at"
    return ApiError(
        "ValidationException",
        f"1 validation error detected: {shown} '{path}' failed to satisfy constraint: "
        f"Member must {constraint}",
    )


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    for java, python in _PATTERN_FIXES:
        pattern = pattern.replace(java, python)
    return re.compile(pattern)


@functools.cache
def _service_model() -> Any:
    return botocore.session.get_session().get_service_model("stepfunctions")
