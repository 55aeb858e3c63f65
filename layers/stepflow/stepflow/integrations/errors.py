"""Service errors as Step Functions names them: ``<Prefix>.<ErrorCode>`` and AWS's cause text."""

from __future__ import annotations

from typing import Any

from stepflow.runtime.outcome import TaskOutcome


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


def service_failure(exc: BaseException, prefix: str, service: str) -> TaskOutcome | None:
    """The outcome of an optimized integration's failed call (None: not an AWS error).

    ``prefix`` names the error (``DynamoDB`` gives ``DynamoDB.ResourceNotFoundException``),
    ``service`` the cause's ``Service:`` (``AmazonDynamoDBv2``), in the SDK for Java v1
    format Step Functions uses for optimized integrations.
    """
    parsed = client_error(exc)
    if parsed is None:
        return None
    code, message, status, request_id = parsed
    cause = (
        f"{message} (Service: {service}; Status Code: {status}; Error Code: {code}; "
        f"Request ID: {request_id}; Proxy: null)"
    )
    return TaskOutcome.failed(f"{prefix}.{code}", cause)
