"""Errors of the activity and callback service, in the Step Functions API's vocabulary."""

from __future__ import annotations


class ActivityError(Exception):
    """A client error of the service: ``code`` is the Step Functions ``__type``.

    Shaped like :class:`stepflow.api.errors.ApiError` (``code``, ``message``,
    ``status``, :meth:`body`), so the HTTP layer reports it unchanged.
    """

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status

    def body(self) -> dict[str, str]:
        """The JSON error document."""
        return {"__type": self.code, "message": self.message}


def invalid_token(reason: str) -> ActivityError:
    """The token is malformed, forged, or names no execution."""
    return ActivityError("InvalidToken", f"Invalid Token: {reason}")


def task_timed_out() -> ActivityError:
    """The attempt the token names is closed (timed out, superseded or already completed)."""
    return ActivityError("TaskTimedOut", "Task Timed Out: the task attempt is no longer open")


def activity_does_not_exist(arn: str) -> ActivityError:
    """No activity has that ARN."""
    return ActivityError("ActivityDoesNotExist", f"Activity Does Not Exist: '{arn}'")


def invalid_arn(arn: str) -> ActivityError:
    """The ARN is not an activity ARN of this region and account."""
    return ActivityError("InvalidArn", f"Invalid Arn: '{arn}' is not a valid activity ARN")


def validation(message: str) -> ActivityError:
    """A parameter violates its constraints."""
    return ActivityError("ValidationException", message)
