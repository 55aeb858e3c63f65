"""The calls a worker makes, as a boto3 ``stepfunctions`` client makes them.

A worker runs against any object with boto3's method names and keyword
arguments: ``boto3.client("stepfunctions", endpoint_url=...)`` (StepFlow's API
or AWS Step Functions itself) or :class:`ServiceClient`, which calls an
in-process :class:`~stepflow.activities.ActivityService` directly.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
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

    def create_activity(self, **kwargs: Any) -> dict[str, Any]:
        """CreateActivity (a cell worker creates its queue's activity)."""
        return self.service.create_activity(kwargs)

    def list_activities(self, **kwargs: Any) -> dict[str, Any]:
        """ListActivities."""
        return self.service.list_activities(kwargs)


RELEASE_TIMEOUT = 10.0
"""Seconds a ReleaseTask request may take (a shutting-down worker must not hang on it)."""


class ReleaseError(Exception):
    """ReleaseTask was answered with an error; ``code`` is its Step Functions error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class ReleasingClient:
    """A boto3 ``stepfunctions`` client plus ``release_task`` (StepFlow's ``ReleaseTask``).

    boto3 has no method for an operation AWS does not define, so ReleaseTask is
    sent as the same JSON-protocol request boto3 would send, signed with the
    client's credentials (``signing_name="execute-api"`` behind API Gateway with
    IAM authorization). Every other attribute is the wrapped client's. AWS
    Step Functions itself refuses the operation: there a released task waits
    for its lease (heartbeat or task timeout) to run out.
    """

    def __init__(self, client: Any, credentials: Any = None, signing_name: str = "states") -> None:
        self._client = client
        self._credentials = credentials
        self._signing_name = signing_name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def release_task(self, **kwargs: Any) -> dict[str, Any]:
        """ReleaseTask(taskToken): the next GetActivityTask receives the task at once."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        meta = self._client.meta
        request = AWSRequest(
            method="POST",
            url=meta.endpoint_url,
            data=json.dumps(kwargs).encode(),
            headers={
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": "AWSStepFunctions.ReleaseTask",
            },
        )
        if self._credentials is not None:
            SigV4Auth(self._credentials, self._signing_name, meta.region_name).add_auth(request)
        prepared = urllib.request.Request(
            request.url, data=request.body, headers=dict(request.headers.items()), method="POST"
        )
        try:
            with urllib.request.urlopen(prepared, timeout=RELEASE_TIMEOUT) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            error = _error_body(exc.read())
            code = str(error.get("__type", "HTTP" + str(exc.code))).rpartition("#")[2]
            raise ReleaseError(code, str(error.get("message", ""))) from None
        found = json.loads(body or b"{}")
        return found if isinstance(found, dict) else {}


def _error_body(raw: bytes) -> dict[str, Any]:
    try:
        found = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


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
