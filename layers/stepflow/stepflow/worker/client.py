"""The calls a worker makes, as a boto3 ``stepfunctions`` client makes them.

A worker runs against any object with boto3's method names and keyword
arguments: ``boto3.client("stepfunctions", endpoint_url=...)`` (StepFlow's API
or AWS Step Functions itself) or :class:`ServiceClient`, which calls an
in-process :class:`~stepflow.activities.ActivityService` directly.
"""

from __future__ import annotations

from typing import Any, Protocol

from stepflow.activities import ActivityService

REFUSED = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})
"""Error codes meaning the task is no longer this worker's: retrying cannot help."""


class ActivityClient(Protocol):
    """The four Step Functions operations a worker uses (boto3 style)."""

    def get_activity_task(self, **kwargs: Any) -> dict[str, Any]:
        """GetActivityTask(activityArn, workerName)."""

    def send_task_success(self, **kwargs: Any) -> Any:
        """SendTaskSuccess(taskToken, output)."""

    def send_task_failure(self, **kwargs: Any) -> Any:
        """SendTaskFailure(taskToken, error, cause)."""

    def send_task_heartbeat(self, **kwargs: Any) -> Any:
        """SendTaskHeartbeat(taskToken)."""


class ServiceClient:
    """An :class:`ActivityClient` over an in-process service (polls wait ``wait_seconds``).

    It also offers ``release_task`` (a StepFlow extension) for graceful shutdown.
    """

    def __init__(self, service: ActivityService, *, wait_seconds: float = 1.0) -> None:
        self.service = service
        self.wait_seconds = wait_seconds

    def get_activity_task(self, **kwargs: Any) -> dict[str, Any]:
        """GetActivityTask with a short long-poll."""
        return self.service.get_activity_task({"waitSeconds": self.wait_seconds, **kwargs})

    def send_task_success(self, **kwargs: Any) -> Any:
        """SendTaskSuccess."""
        return self.service.send_task_success(kwargs)

    def send_task_failure(self, **kwargs: Any) -> Any:
        """SendTaskFailure."""
        return self.service.send_task_failure(kwargs)

    def send_task_heartbeat(self, **kwargs: Any) -> Any:
        """SendTaskHeartbeat."""
        return self.service.send_task_heartbeat(kwargs)

    def release_task(self, **kwargs: Any) -> Any:
        """Give a task back so the next poll receives it at once."""
        return self.service.release_task(kwargs)


def error_code(exc: BaseException) -> str | None:
    """The Step Functions error code of ``exc`` (a botocore ClientError or an ActivityError)."""
    code = getattr(exc, "code", None)
    if isinstance(code, str):
        return code
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        found = response.get("Error", {}).get("Code")
        return str(found) if found else None
    return None
