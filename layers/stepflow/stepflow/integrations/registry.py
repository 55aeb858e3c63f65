"""The one registry of integrations: which resources StepFlow runs, and the invoker that runs them.

Every Task resource is resolved here, and only here: a Python handler bound in
a test, else the integration registered for the resource's service
(:mod:`stepflow.integrations.catalog`). Validation asks :meth:`Registry.problem`
(an ``UNSUPPORTED_INTEGRATION`` warning); the runtime calls
:class:`IntegrationInvoker`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from stepflow.engine.resources import describe
from stepflow.errors import StatesErrorName
from stepflow.integrations.base import Integration, PollsJobs, TaskRequest
from stepflow.runtime.clients import TaskCallRefused, TaskClients
from stepflow.runtime.outcome import TaskOutcome

SUPPORTED_DOC = "README.md#supported-integrations"
"""Where users read what StepFlow runs."""


@dataclass(slots=True)
class Registry:
    """Integrations by service (``aws-sdk:*`` matches every ``aws-sdk:<service>``)."""

    integrations: dict[str, Integration] = field(default_factory=dict)

    def register(self, integration: Integration) -> None:
        """Add ``integration`` for its service (replacing any before it)."""
        self.integrations[integration.service] = integration

    def find(self, resource: str) -> Integration | None:
        """The integration of ``resource``'s service (None: none)."""
        info = describe(resource)
        if info.kind == "activity":
            return None
        found = self.integrations.get(info.service)
        if found is None and info.service.startswith("aws-sdk:"):
            found = self.integrations.get("aws-sdk:*")
        return found

    def problem(self, resource: str) -> str | None:
        """Why StepFlow cannot run ``resource`` (None: it can, or it is an activity).

        A wildcard integration (``aws-sdk:*``) is asked about ``<service>:<action>``
        (``s3:getObject``), the others about the action alone.
        """
        info = describe(resource)
        if info.kind == "activity":
            return None
        integration = self.find(resource)
        if integration is None:
            return f"StepFlow has no integration for service {info.service!r}"
        if info.pattern not in integration.patterns:
            return f"{info.service} does not support the {info.pattern} integration pattern"
        if integration.service.endswith(":*"):  # one integration for many services
            service = info.service.partition(":")[2]
            return integration.check(f"{service}:{info.action}", info.pattern)
        return integration.check(info.action, info.pattern)

    def parameters_problem(self, resource: str, parameters: Any) -> str | None:
        """Why ``parameters`` cannot start a task of ``resource`` (None: none found).

        The engine's injected check (:data:`stepflow.engine.ParameterCheck`, no I/O):
        the state fails with ``States.Runtime`` before the task is scheduled, as on AWS.
        An integration takes part by having ``parameters_problem(action, parameters)``
        (:class:`~stepflow.integrations.base.ChecksParameters`): pure, reading the
        parameters only. A resource StepFlow cannot run is left to the runtime error
        that names it.
        """
        info = describe(resource)
        if info.kind == "activity":
            return None
        integration = self.find(resource)
        if integration is None or info.pattern not in integration.patterns:
            return None
        check = getattr(integration, "parameters_problem", None)
        if check is None:
            return None
        action = info.action
        if integration.service.endswith(":*"):
            action = f"{info.service.partition(':')[2]}:{action}"
        problem = check(action, parameters)
        return problem if isinstance(problem, str) else None

    def services(self) -> Iterable[str]:
        """The services registered, sorted."""
        return sorted(self.integrations)


class IntegrationInvoker:
    """The runtime's task invoker: resolves the resource in ``registry`` and performs it.

    ``clients`` hands out each task's AWS clients (its role). A resource with
    no integration, or one it cannot run, fails with ``States.Runtime`` naming
    the resource.
    """

    def __init__(self, registry: Registry, clients: TaskClients) -> None:
        self.registry = registry
        self.clients = clients

    def __call__(self, body: dict[str, Any]) -> TaskOutcome:
        """Run the task of an inline task message ``body``.

        A body with ``op`` ``poll`` or ``cancel`` polls or stops the job of a ``.sync``
        task (its ``handle``) through the integration's :class:`~.base.PollsJobs` side.
        """
        request = TaskRequest.from_body(body)
        problem = self.registry.problem(request.resource)
        integration = self.registry.find(request.resource)
        if problem is not None or integration is None:
            return unsupported(request.resource, problem)
        op = body.get("op")
        try:
            if op in ("poll", "cancel"):
                return _job(integration, str(op), request, body.get("handle"), self.clients)
            return integration.call(request, self.clients)
        except TaskCallRefused as refused:
            return refused.outcome()


def _job(
    integration: Integration, op: str, request: TaskRequest, handle: Any, clients: TaskClients
) -> TaskOutcome:
    """Poll (``op`` poll) or stop (``op`` cancel) the job ``handle`` of a ``.sync`` task."""
    if not isinstance(integration, PollsJobs) or not isinstance(handle, dict):
        return TaskOutcome.failed(
            StatesErrorName.RUNTIME,
            f"StepFlow cannot {op} the job of the Task resource {request.resource!r}: "
            "its integration polls no jobs, or the job's handle is missing.",
        )
    if op == "poll":
        return integration.poll(request, handle, clients)
    integration.cancel(request, handle, clients)
    return TaskOutcome.succeeded(None)


def unsupported(resource: str, problem: str | None) -> TaskOutcome:
    """The failed outcome of a resource StepFlow cannot run."""
    reason = f": {problem}" if problem else ""
    return TaskOutcome.failed(
        StatesErrorName.RUNTIME,
        f"StepFlow cannot run the Task resource {resource!r}{reason} (see {SUPPORTED_DOC}).",
    )
