"""Nested executions in :class:`~stepflow.testing.WorkflowEnvironment`: the API's own start.

A ``states:startExecution`` task of the environment starts its child through
:class:`stepflow.api.nested.ApiExecutionStarter` over a
:class:`~stepflow.api.service.StepFunctionsService` that shares the environment's
log, bus and stepper: the same StartExecution (names, input, ExecutionAlreadyExists,
``.sync`` callers) as a deployment, with no HTTP hop.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from stepflow.engine.resources import describe
from stepflow.integrations import IntegrationInvoker, Registry
from stepflow.integrations.catalog import with_starter
from stepflow.runtime.arns import machine_name
from stepflow.runtime.clients import TaskClients
from stepflow.runtime.nested import SERVICE, NestedStart, StartedExecution
from stepflow.runtime.outcome import TaskInvoker, TaskOutcome

if TYPE_CHECKING:  # imported when used: the API runs Express executions in an environment
    from stepflow.api.nested import ApiExecutionStarter
    from stepflow.api.service import StepFunctionsService

NAMING_DEFINITION = json.dumps({"StartAt": "Run", "States": {"Run": {"Type": "Succeed"}}})
"""What the environment's API registry stores for a registered machine. It only names
the machine (ARN, revision, role) for StartExecution: the environment's stepper runs
the definition :meth:`WorkflowEnvironment.register` parsed, never this one."""


class EnvironmentStarter:
    """The API's starter over the environment's ``service`` (built on first use)."""

    def __init__(self, service: Callable[[], StepFunctionsService]) -> None:
        self._service = service
        self._inner: ApiExecutionStarter | None = None

    def start(self, request: NestedStart) -> StartedExecution:
        """Start ``request`` through the environment's API."""
        from stepflow.api.nested import ApiExecutionStarter

        if self._inner is None:
            self._inner = ApiExecutionStarter(
                lambda: self._service().executions, lambda: self._service().limits
            )
        return self._inner.start(request)


def name_machine(service: StepFunctionsService, state_machine_arn: str, role: str) -> None:
    """Make a registered machine known to the environment's API (once)."""
    from stepflow.api.errors import ApiError

    name = machine_name(state_machine_arn)
    try:
        service.machines.head(service.scope.machine_arn(name))
    except ApiError:
        service.call(
            "CreateStateMachine",
            {"name": name, "definition": NAMING_DEFINITION, "roleArn": role},
        )


class NestedTasks:
    """``states:*`` tasks run the ``states`` integration over ``starter``; others ``otherwise``."""

    def __init__(self, starter: EnvironmentStarter, otherwise: TaskInvoker) -> None:
        # The states integration makes no AWS call: it is given no clients.
        self.states = IntegrationInvoker(with_starter(Registry(), starter), cast(TaskClients, None))
        self.otherwise = otherwise

    def __call__(self, body: dict[str, Any]) -> TaskOutcome:
        """Run the task of an inline task message body."""
        if describe(str(body.get("resource", ""))).service == SERVICE:
            return self.states(body)
        return self.otherwise(body)
