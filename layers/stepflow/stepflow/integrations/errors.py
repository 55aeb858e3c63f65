"""Failed AWS calls as Step Functions names them: the error name and AWS's cause text.

Every integration names its failures through one :class:`ErrorNames`. What
differs between them is what AWS shows, and is a field:

- ``naming``: ``code`` gives ``<Prefix>.<ErrorCode>`` (``Lambda.TooManyRequestsException``,
  ``Athena.InvalidRequestException``); ``modeled`` the SDK for Java v1 exception
  class the service model names for the code, else ``base_exception``
  (``SNS.NotFoundException`` for SNS's ``NotFound``,
  ``DynamoDB.AmazonDynamoDBException`` for an unmodelled code); ``suffixed`` the
  SDK v2 class (the modeled shape with ``Exception`` added, else
  ``base_exception``: ``S3.NoSuchKeyException``, ``DynamoDb.DynamoDbException``).
- ``cause_service``: the cause in the SDK for Java v1 format (optimized
  integrations: ``... (Service: AmazonDynamoDBv2; Status Code: 400; Error Code:
  ...; Request ID: ...; Proxy: null)``); None: the v2 format of ``aws-sdk``
  (``... (Service: S3, Status Code: 404, Request ID: ...) (SDK Attempt Count: 1)``).

A botocore failure that is no service error (no credentials, no connection) is
``<Prefix>.SdkClientException``, as the SDK for Java names it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from stepflow.errors import StatesErrorName
from stepflow.runtime.outcome import TaskOutcome

Naming = Literal["code", "modeled", "suffixed"]
"""How a service error code becomes the error name (see the module docstring)."""


def client_error(exc: BaseException) -> tuple[str, str, int, str] | None:
    """``(code, message, HTTP status, request id)`` of a botocore ``ClientError`` (else None)."""
    response: Any = getattr(exc, "response", None)
    if not isinstance(response, dict) or "Error" not in response:
        return None
    error = response.get("Error") or {}
    metadata = response.get("ResponseMetadata") or {}
    code = str(error.get("Code") or "UnknownError")
    message = str(error.get("Message") or exc)
    status = int(metadata.get("HTTPStatusCode") or 400)
    return code, message, status, str(metadata.get("RequestId") or "")


@dataclass(frozen=True, slots=True)
class ErrorNames:
    """How one integration names its failed calls.

    ``prefix`` starts every name (``DynamoDB``, ``S3``); ``cause_service`` is the
    v1 cause's ``Service:`` (None: the v2 cause of ``aws-sdk``); ``naming`` maps
    an error code to a name; ``base_exception`` names an unmodelled error and a
    request the service refuses as invalid (code ``validation_code``).
    """

    prefix: str
    cause_service: str | None = None
    naming: Naming = "code"
    base_exception: str = ""
    validation_code: str = "ValidationException"

    def name(self, code: str, service_model: Any = None) -> str:
        """The error name of the service error ``code``."""
        if self.naming == "code":
            return f"{self.prefix}.{code}"
        shape = modeled_error(service_model, code)
        if shape is None:
            return f"{self.prefix}.{self.base_exception}"
        if self.naming == "suffixed" and not shape.endswith("Exception"):
            shape += "Exception"
        return f"{self.prefix}.{shape}"

    def cause(
        self, message: str, status: int, code: str, request_id: str, host: str | None = None
    ) -> str:
        """AWS's cause text of a service error (the SDK for Java's exception text)."""
        if self.cause_service is None:
            extended = f", Extended Request ID: {host}" if host else ""
            return (
                f"{message} (Service: {self.prefix}, Status Code: {status}, "
                f"Request ID: {request_id}{extended}) (SDK Attempt Count: 1)"
            )
        return (
            f"{message} (Service: {self.cause_service}; Status Code: {status}; "
            f"Error Code: {code}; Request ID: {request_id}; Proxy: null)"
        )

    def failure(self, exc: BaseException, service_model: Any = None) -> TaskOutcome | None:
        """The outcome of a failed boto3 call (None: ``exc`` is no botocore failure)."""
        parsed = client_error(exc)
        if parsed is None:
            if type(exc).__module__.startswith("botocore"):
                return TaskOutcome.failed(f"{self.prefix}.SdkClientException", str(exc))
            return None
        code, message, status, request_id = parsed
        host = None
        if self.cause_service is None:
            metadata = (getattr(exc, "response", None) or {}).get("ResponseMetadata") or {}
            host = metadata.get("HostId")
        return TaskOutcome.failed(
            self.name(code, service_model), self.cause(message, status, code, request_id, host)
        )

    def invalid(self, message: str) -> TaskOutcome:
        """The service's answer to a request that breaks its constraints (no call made)."""
        return TaskOutcome.failed(
            f"{self.prefix}.{self.base_exception}",
            self.cause(message, 400, self.validation_code, str(uuid.uuid4())),
        )


def modeled_error(service_model: Any, code: str) -> str | None:
    """The error shape the service model names for ``code`` (None: unmodelled)."""
    for shape in getattr(service_model, "error_shapes", ()) or ():
        declared = (getattr(shape, "metadata", {}).get("error") or {}).get("code")
        if code in (shape.name, declared):
            return str(shape.name)
    return None


def violations_message(violations: list[str]) -> str:
    """AWS's validation message of constraint ``violations``."""
    count = len(violations)
    noun = "error" if count == 1 else "errors"
    return f"{count} validation {noun} detected: " + "; ".join(violations)


def null_violation(member: str) -> str:
    """A required member that is null or missing, as AWS words it."""
    name = member[:1].lower() + member[1:]
    return f"Value null at '{name}' failed to satisfy constraint: Member must not be null"


def service_failure(exc: BaseException, prefix: str, service: str) -> TaskOutcome | None:
    """``<Prefix>.<Code>`` with the v1 cause of ``service`` (None: not an AWS error).

    Shorthand for ``ErrorNames(prefix, service).failure(exc)`` on service errors only.
    """
    if client_error(exc) is None:
        return None
    return ErrorNames(prefix, service).failure(exc)


def parameters_refused(parameters: Any, problem: str, state: str | None = None) -> TaskOutcome:
    """``States.Runtime``: the task's ``parameters`` cannot start it, with AWS's cause text.

    ``state`` (the state's name, ``""`` when unknown) starts the cause with
    ``An error occurred while executing the state ...``, as the optimized
    integrations' refusals do. Parameters past 1024 characters of JSON are cut.
    """
    text = json.dumps(parameters, separators=(",", ":"), ensure_ascii=False)
    if len(text) > 1024:
        text = text[:1024] + "..."
    where = ""
    if state is not None:
        where = f"An error occurred while executing the state{f' {state!r}' if state else ''}. "
    return TaskOutcome.failed(
        StatesErrorName.RUNTIME,
        f"{where}The Parameters '{text}' could not be used to start the Task: [{problem}]",
    )
