"""The cells' parts of a :class:`~stepflow.aws.wiring.Wiring` (its base: :class:`CellParts`).

The cells modules ``STEPFLOW_CELLS`` names, the runtime that runs ``stepflow:*``
tasks (cells journaled in the log, with the task's role), the built-in effects'
handlers, and the task router: activity tasks to their queues, the cells
``STEPFLOW_CELL_QUEUES`` routes to theirs. Built on first use, as every part.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

from stepflow.activities import ActivityRouter
from stepflow.aws.own_resources import own_resources
from stepflow.aws.settings import Settings
from stepflow.cells import CellModules, CellRuntime, EffectHandlers, LogJournal, load_modules
from stepflow.cells.queues import CellQueues, CellRouter
from stepflow.integrations.effect_handlers import builtin_handlers
from stepflow.integrations.effect_http import EffectHttp
from stepflow.integrations.http_denied import DeniedEndpoints
from stepflow.runtime.task_queue import TaskRouter

if TYPE_CHECKING:
    from stepflow.aws.dynamodb_log import DynamoDBLog
    from stepflow.aws.role_clients import RoleClients
    from stepflow.aws.sqs_bus import SQSBus
    from stepflow.aws.sqs_task_queue import SQSTaskQueue
    from stepflow.integrations import Registry
    from stepflow.runtime.signing import MessageSigner


class CellParts:
    """The cells' parts of a wiring, over the parts :class:`~stepflow.aws.wiring.Wiring` builds."""

    settings: Settings
    denied_endpoints: DeniedEndpoints | None
    clock: Callable[[], float]

    if TYPE_CHECKING:  # built by Wiring

        @property
        def log(self) -> DynamoDBLog:
            """The coordination log."""

        @property
        def signer(self) -> MessageSigner:
            """The message signer."""

        @property
        def bus(self) -> SQSBus:
            """The transition queue."""

        @property
        def task_queue(self) -> SQSTaskQueue:
            """The activity task queues."""

        @property
        def task_clients(self) -> RoleClients:
            """The task integrations' clients (the task's role)."""

        @property
        def integrations(self) -> Registry:
            """The integration registry."""

    @cached_property
    def cell_modules(self) -> CellModules:
        """The cells and effect handlers of the settings' cells modules (``STEPFLOW_CELLS``)."""
        names = [name for name in self.settings.cells.split(",") if name.strip()]
        return load_modules(names)

    @cached_property
    def cell_runtime(self) -> CellRuntime:
        """Runs ``stepflow:*`` tasks: cells journaled in this log, with the task's role."""
        modules = self.cell_modules
        handlers = self.effect_handlers.merged(modules.handlers)  # the user's handlers win
        return CellRuntime(modules.cells, handlers, LogJournal(self.log), self.task_clients)

    @cached_property
    def effect_handlers(self) -> EffectHandlers:
        """The built-in effects' handlers: HTTP guarded as HTTP tasks are, AWS as the task's role.

        An AWS effect never names StepFlow's own resources (as the task guard).
        """
        local = self.denied_endpoints is not None
        http = EffectHttp(denied=self.denied_endpoints, allow_loopback=local)
        own = own_resources(self.settings)
        return builtin_handlers(self.integrations, self.task_clients, http, own)

    @cached_property
    def router(self) -> TaskRouter:
        """Activity tasks to their queues; the cells ``STEPFLOW_CELL_QUEUES`` routes to theirs."""
        activities = ActivityRouter(self.task_queue, self.bus, signer=self.signer)
        queues = CellQueues.parse(self.settings.cell_queues)
        if not queues:
            return activities
        return CellRouter(
            queues,
            self.task_queue,
            signer=self.signer,
            inner=activities,
            bus=self.bus,
            clock=self.clock,
        )
