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
    """The API's starter over ``service``; a registered machine is made known to it first.

    ``registered(arn)`` says whether the environment has a definition for ``arn``'s
    state machine; ``role`` is the role the environment's executions run as.
    """

    def __init__(
        self,
        service: Callable[[], StepFunctionsService],
        registered: Callable[[str], bool],
        role: str,
    ) -> None:
        self._service = service
        self._registered = registered
        self._role = role
        self._inner: ApiExecutionStarter | None = None

    def start(self, request: NestedStart) -> StartedExecution:
        """Start ``request`` through the API (creating its machine there on first use)."""
        from stepflow.api.errors import ApiError
        from stepflow.api.nested import ApiExecutionStarter

        if self._inner is None:
            self._inner = ApiExecutionStarter(
                lambda: self._service().executions, lambda: self._service().limits
            )
        arn = request.state_machine_arn
        if self._registered(arn):
            name = arn.split(":")[6]
            service = self._service()
            try:
                service.machines.head(service.scope.machine_arn(name))
            except ApiError:
                service.call(
                    "CreateStateMachine",
                    {"name": name, "definition": NAMING_DEFINITION, "roleArn": self._role},
                )
        return self._inner.start(request)


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
