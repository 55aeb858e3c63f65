"""How integrations get their AWS clients: per task, with the task's role.

The core names the port; the edge implements it
(:class:`stepflow.aws.role_clients.RoleClients`: STS AssumeRole, cached).
"""

from __future__ import annotations

import re
from typing import Any, Protocol, runtime_checkable

from stepflow.runtime.outcome import TaskOutcome

ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,576}$")
"""The shape of an IAM role ARN (partition, 12-digit account, optional path, name)."""


@runtime_checkable
class TaskClients(Protocol):
    """Hands out the client an integration calls one task's target with."""

    def for_task(
        self,
        service: str,
        role_arn: str,
        region: str | None = None,
        *,
        execution: str = "",
        via: str = "",
    ) -> Any:
        """A client of ``service`` acting as ``role_arn`` (for the execution ``execution``).

        ``via`` is the execution's role: a different ``role_arn`` is assumed with
        ``via``'s credentials (role chaining, as on AWS), so the target role must
        trust the execution role, not StepFlow.

        Raises :class:`TaskCallRefused` when the role cannot be used.
        """
        ...


class TaskCallRefused(Exception):
    """The call cannot be made (its role was refused): the task fails with ``error``/``cause``."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(cause)
        self.error = error
        self.cause = cause

    def outcome(self) -> TaskOutcome:
        """The failed task outcome."""
        return TaskOutcome.failed(self.error, self.cause)


class FixedClients:
    """The given clients, whatever the role (tests and in-memory wiring: no IAM there)."""

    def __init__(self, **clients: Any) -> None:
        self.clients = clients

    def for_task(
        self,
        service: str,
        role_arn: str,
        region: str | None = None,
        *,
        execution: str = "",
        via: str = "",
    ) -> Any:
        """The client given for ``service`` (the roles are ignored)."""
        return self.clients[service]
