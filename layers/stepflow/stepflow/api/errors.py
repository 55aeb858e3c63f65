"""API errors in the shape of the Step Functions JSON protocol."""

from __future__ import annotations


class ApiError(Exception):
    """A client error: HTTP 400 with ``{"__type": code, "message": message}``.

    ``code`` is the error shape name botocore maps to a ``ClientError`` code
    (``InvalidArn``, ``StateMachineDoesNotExist``, ``ValidationException``, ...).
    """

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status

    def body(self) -> dict[str, str]:
        """The JSON error document."""
        return {"__type": self.code, "message": self.message}


def invalid_arn(arn: str, kind: str) -> ApiError:
    """The ARN is not a valid ``kind`` ARN of this region and account."""
    return ApiError("InvalidArn", f"Invalid Arn: '{arn}' is not a valid {kind} ARN")


def validation(message: str) -> ApiError:
    """A parameter violates its constraints."""
    return ApiError("ValidationException", message)
