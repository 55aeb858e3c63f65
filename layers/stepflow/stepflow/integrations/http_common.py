"""What the HTTP integrations share: parameter errors, request bodies, response output.

Step Functions fails a task whose parameters have the wrong shape with
``States.Runtime`` and a cause naming the field; an HTTP problem with no
response maps to the error each integration names (timeout: ``States.Timeout``,
a body past the size cap: ``States.DataLimitExceeded``).
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from stepflow.errors import StatesErrorName
from stepflow.integrations.errors import parameters_refused
from stepflow.integrations.http_port import DEFAULT_TIMEOUT_SECONDS, HttpProblem, HttpResponse
from stepflow.runtime.outcome import TaskOutcome

JSON = "application/json"


class BadParameters(Exception):
    """The task's parameters cannot start the task (``States.Runtime``)."""

    def __init__(self, field: str, problem: str = "has an invalid format") -> None:
        super().__init__(field)
        self.field = field
        self.problem = problem

    @property
    def problem_text(self) -> str:
        """AWS's words for the problem (inside the brackets of its cause)."""
        return f"The value of the field '{self.field}' {self.problem}"

    def outcome(self, parameters: Any) -> TaskOutcome:
        """``States.Runtime`` with AWS's cause text."""
        return parameters_refused(parameters, self.problem_text)


def require_str(parameters: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    """The string field ``name`` (None when absent and optional)."""
    value = parameters.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise BadParameters(name, "is required" if value is None else "has an invalid format")
    return value


def timeout_of(timeout_seconds: int | None) -> float:
    """The HTTP time limit of a task attempt: its ``TimeoutSeconds``, else the default."""
    return float(timeout_seconds) if timeout_seconds else DEFAULT_TIMEOUT_SECONDS


def problem_outcome(problem: HttpProblem, prefix: str, parameters: Any) -> TaskOutcome:
    """The outcome of a request that got no response; ``prefix`` names connection failures."""
    if problem.kind == "timeout":
        return TaskOutcome.failed(StatesErrorName.TIMEOUT, problem.message)
    if problem.kind == "too_large":
        return TaskOutcome.failed(StatesErrorName.DATA_LIMIT_EXCEEDED, problem.message)
    if problem.kind == "invalid":
        return parameters_refused(parameters, problem.message)
    return TaskOutcome.failed(prefix, problem.message)


def body_text(response: HttpResponse) -> str:
    """The response body as text (invalid UTF-8 replaced, never an exception)."""
    return response.body.decode("utf-8", errors="replace")


def parsed_body(response: HttpResponse) -> Any:
    """The body parsed as JSON when it is JSON, else its text ("" when empty)."""
    text = body_text(response)
    if not text:
        return ""
    try:
        return json.loads(text)
    except ValueError:
        return text


def header_lists(response: HttpResponse) -> dict[str, list[str]]:
    """The response headers, each name's values as a list in arrival order."""
    headers: dict[str, list[str]] = {}
    for name, value in response.headers:
        headers.setdefault(name, []).append(value)
    return headers


def status_text(response: HttpResponse) -> str:
    """The reason phrase (the standard one when the server sent none)."""
    if response.reason:
        return response.reason
    try:
        return HTTPStatus(response.status).phrase
    except ValueError:
        return ""


def drop_nulls(value: Any) -> Any:
    """``value`` without the null members of its objects (at every depth)."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value
