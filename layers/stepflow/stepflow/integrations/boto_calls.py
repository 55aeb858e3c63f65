"""Optimized integrations that are one API call each (athena, glue, batch, ecs, bedrock).

Step Functions spells every parameter in PascalCase (``Cluster``,
``TaskDefinition``) where some APIs use camelCase (ECS's ``cluster``), and
returns the response in PascalCase too, timestamps as epoch milliseconds,
without ``ResponseMetadata``: :func:`.api_call.call_api` in its
:data:`~.api_call.ONE_CALL` style. Errors are ``<Prefix>.<ErrorCode>``.

Only the request-response form (and ``.waitForTaskToken`` where AWS has it) is
run here; the ``.sync`` forms poll the job and are the next issue's:
:meth:`BotoIntegration.check` says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from stepflow.engine.resources import Pattern
from stepflow.integrations.api_call import ONE_CALL, Finish, call_api
from stepflow.integrations.base import TaskRequest, unknown_action
from stepflow.integrations.errors import ErrorNames
from stepflow.integrations.http_common import BadParameters
from stepflow.runtime.clients import TaskClients
from stepflow.runtime.outcome import TaskOutcome

Prepare = Callable[[TaskRequest, TaskClients, dict[str, Any]], dict[str, Any]]
"""Turns the task's parameters into the API's (after the name translation)."""


@dataclass(frozen=True, slots=True)
class Action:
    """One action: its API operation and the patterns AWS runs it in."""

    operation: str
    patterns: frozenset[Pattern] = frozenset({"request-response"})
    prepare: Prepare | None = None
    finish: Finish | None = None


@dataclass(slots=True)
class BotoIntegration:
    """A service whose actions are one call each on the boto3 client ``client``.

    ``prefix`` names its errors (``Athena`` gives ``Athena.InvalidRequestException``),
    ``cause_service`` the cause's ``Service:`` (``AmazonAthena``).
    """

    service: str
    client: str
    prefix: str
    cause_service: str
    actions: Mapping[str, Action]
    patterns: frozenset[Pattern] = field(
        default=frozenset({"request-response", "wait-for-token", "sync", "sync2"})
    )

    def check(self, action: str, pattern: Pattern) -> str | None:
        """Why ``action`` in ``pattern`` cannot run (None: it can)."""
        found = self.actions.get(action)
        if found is None:
            return unknown_action(self.service, action, sorted(self.actions))
        if pattern in ("sync", "sync2"):
            if pattern in found.patterns:
                return (
                    f"the .sync form of {self.service}:{action} is not supported yet "
                    "(request-response only)"
                )
            return f"{self.service}:{action} has no .sync form"
        if pattern not in found.patterns:
            return f"{self.service}:{action} does not support the {pattern} pattern"
        return None

    @classmethod
    def single(
        cls, service: str, prefix: str, cause_service: str, action: str, operation: str
    ) -> BotoIntegration:
        """A service with one action, run request-response (its ``.sync`` form next issue)."""
        patterns: frozenset[Pattern] = frozenset({"request-response", "sync"})
        return cls(service, service, prefix, cause_service, {action: Action(operation, patterns)})

    def call(self, request: TaskRequest, clients: TaskClients) -> TaskOutcome:
        """Make the call once, as the task's role; the response as Step Functions returns it."""
        action = self.actions[request.action]
        parameters = request.parameters if request.parameters is not None else {}
        if not isinstance(parameters, dict):
            return BadParameters("Parameters").outcome(parameters)
        prepare = None if action.prepare is None else partial(action.prepare, request, clients)
        names = ErrorNames(self.prefix, self.cause_service)
        client = request.client(clients, self.client)
        return call_api(
            request,
            client,
            action.operation,
            parameters,
            names,
            ONE_CALL,
            prepare=prepare,
            finish=action.finish,
        )
