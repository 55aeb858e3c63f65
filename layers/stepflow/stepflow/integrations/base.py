"""A Task as an effect: the typed request an integration performs, and its contract.

The engine emits a ``RunTask`` command; the runtime turns it into an inline
task message; :meth:`TaskRequest.from_body` reads that message body into the
typed request every integration receives. An integration performs the call
with a client from the task clients (the task's role) and returns a
:class:`~stepflow.runtime.outcome.TaskOutcome`: the output as Step Functions
returns it, or the error and cause as Step Functions names them.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from stepflow.engine.resources import Pattern, describe
from stepflow.errors import StatesErrorName
from stepflow.runtime.clients import TaskCallRefused, TaskClients
from stepflow.runtime.outcome import TaskOutcome


@dataclass(frozen=True, slots=True)
class TaskRequest:
    """One task attempt's call: what to call, how, with what, as whom.

    ``service``/``action`` are the resource's (``dynamodb``/``putItem``,
    ``aws-sdk:s3``/``getObject``, ``lambda``/``function`` for a function ARN);
    ``pattern`` is ``request-response``, ``wait-for-token``, ``sync`` or
    ``sync2``. ``parameters`` is the state's effective input (the API request).
    ``region`` is the resource ARN's region, None when it names none.
    ``execution_role`` is the execution's role, which a different ``role_arn``
    is assumed through (role chaining); "" when the message names none (a
    message older than chaining): the role clients then refuse to assume a role.
    """

    resource: str
    service: str
    action: str
    pattern: Pattern
    parameters: Any
    role_arn: str
    region: str | None
    execution_arn: str = ""
    state_name: str = ""
    task_id: str = ""
    timeout_seconds: int | None = None
    heartbeat_seconds: int | None = None
    task_token: str | None = None
    execution_role: str = ""

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> TaskRequest:
        """The request of an inline task message body (``execution_arn`` added by the runner)."""
        resource = str(body.get("resource", ""))
        info = describe(resource)
        parts = resource.split(":")
        region = parts[3] if resource.startswith("arn:") and len(parts) > 3 and parts[3] else None
        return cls(
            resource=resource,
            service=info.service,
            action=info.action,
            pattern=info.pattern,
            parameters=body.get("input"),
            role_arn=str(body.get("role_arn") or ""),
            region=region,
            execution_arn=str(body.get("execution_arn") or ""),
            state_name=str(body.get("state_name") or ""),
            task_id=str(body.get("task_id") or ""),
            timeout_seconds=body.get("timeout_seconds"),
            heartbeat_seconds=body.get("heartbeat_seconds"),
            task_token=body.get("task_token"),
            execution_role=str(body.get("execution_role") or ""),
        )

    def client(self, clients: TaskClients, service: str, region: str | None = None) -> Any:
        """The boto3 client of ``service`` for this task's role (in ``region``, else the ARN's).

        The role is assumed through the execution's role when it differs from it.
        Raises :class:`~stepflow.runtime.clients.TaskCallRefused` when the role is refused,
        or when botocore cannot make the client (a region, taken from an ARN or a URL in the
        parameters, that it refuses): the task fails instead of its message being redelivered.
        """
        from botocore.exceptions import BotoCoreError

        try:
            return clients.for_task(
                service,
                self.role_arn,
                region or self.region,
                execution=self.execution_arn,
                via=self.execution_role,
            )
        except BotoCoreError as exc:
            raise TaskCallRefused(
                StatesErrorName.TASK_FAILED,
                f"StepFlow could not make the {service} client for the task: {exc}",
            ) from exc


class Integration(Protocol):
    """Performs the tasks of one service (one module under ``stepflow.integrations``).

    ``service`` is the resource's service (``dynamodb``, ``aws-sdk:*`` for the
    generic SDK integration); ``patterns`` are the integration patterns it
    supports.
    """

    service: str
    patterns: frozenset[Pattern]

    def check(self, action: str, pattern: Pattern) -> str | None:
        """Why ``action`` in ``pattern`` cannot run (None: it can). No I/O, no client."""
        ...

    def call(self, request: TaskRequest, clients: TaskClients) -> TaskOutcome:
        """Perform ``request``. For ``wait-for-token`` the output is the send's response."""
        ...


class ChecksParameters(Protocol):
    """An integration that can tell, without I/O, parameters AWS refuses before scheduling.

    Optional (see :meth:`stepflow.integrations.registry.Registry.parameters_problem`):
    ``parameters_problem`` returns AWS's words for the problem (the text inside the
    brackets of "could not be used to start the Task: [...]"), None when there is
    none. It only reads ``parameters`` (no copy of them, no client, no network) and
    should be linear in their size: the engine calls it on every task attempt.
    """

    def parameters_problem(self, action: str, parameters: Any) -> str | None:
        """Why ``parameters`` cannot start ``action`` (None: they can)."""
        ...


def unknown_action(
    service: str, action: str, known: Collection[str], sdk_service: str | None = None
) -> str | None:
    """Why ``<service>:<action>`` is none of the integration's ``known`` actions (None: it is one).

    ``sdk_service`` names the ``aws-sdk`` service that runs the API's other actions.
    """
    if action in known:
        return None
    names = ", ".join(f"{service}:{name}" for name in known)
    hint = f"; use arn:aws:states:::aws-sdk:{sdk_service}:{action}" if sdk_service else ""
    return f"{service}:{action} is not a Step Functions integration (only {names}{hint})"


@runtime_checkable
class PollsJobs(Protocol):
    """An integration whose ``.sync`` jobs end without telling anyone: polled on durable timers.

    Optional. For a ``sync``/``sync2`` request, ``call`` starts the job and returns
    :meth:`TaskOutcome.started` with the job's ``handle`` and ``poll_after`` seconds;
    the engine then asks for ``poll`` that much later (a ``PollTask``), until the
    outcome is final. A parent that stops or times out asks for ``cancel``.
    """

    def poll(
        self, request: TaskRequest, handle: dict[str, Any], clients: TaskClients
    ) -> TaskOutcome:
        """The job's outcome, or :meth:`TaskOutcome.started` (still running; poll again)."""
        ...

    def cancel(self, request: TaskRequest, handle: dict[str, Any], clients: TaskClients) -> None:
        """Stop the job (best effort, as AWS does when the state is stopped)."""
        ...
