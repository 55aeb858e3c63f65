"""How a :class:`~stepflow.testing.WorkflowEnvironment` runs tasks: its task ports.

The invoker chain (handlers, nested ``states:startExecution`` through the
environment's own API, effectful cells, callback tasks), the cell queues'
router, the parameter check and the evaluation budgets the environment's
stepper is built with, and an activity task as an :class:`OpenTask`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from stepflow.activities.tokens import parse as parse_token
from stepflow.cells import CellModules, CellRuntime, CellTasks, LogJournal, cell_modules
from stepflow.cells.queues import CellQueues, CellRouter
from stepflow.data.budget import Budget, clock_budgets
from stepflow.engine import ParameterCheck
from stepflow.integrations import default_registry
from stepflow.integrations.effect_handlers import builtin_handlers
from stepflow.limits import Limits
from stepflow.runtime import CoordinationLog, InMemoryBus
from stepflow.runtime.clients import TaskClients
from stepflow.runtime.outcome import TaskInvoker, TaskOutcome
from stepflow.runtime.payloads import PayloadStore
from stepflow.runtime.targets import OwnResources
from stepflow.runtime.task_queue import InMemoryTaskQueue, TaskRouter
from stepflow.testing.handlers import (
    Handler,
    aws_clients,
    aws_invoker,
    task_invoker,
    unbound_check,
)
from stepflow.testing.nested import EnvironmentStarter, NestedTasks
from stepflow.testing.tasks import CallbackTasks, OpenTask

if TYPE_CHECKING:
    from stepflow.api.service import StepFunctionsService


def task_ports(
    handlers: dict[str, Handler],
    invoker: TaskInvoker | None,
    aws: bool | TaskClients,
    region: str,
    *,
    nested: bool | None,
    api: Callable[[], StepFunctionsService],
    cells: CellModules | Iterable[str | type[Any]] | None,
    log: CoordinationLog,
    given_log: CoordinationLog | None,
) -> tuple[CellModules, CellRuntime, CallbackTasks]:
    """The environment's cells, their runtime and the tasks its stepper invokes.

    ``invoker`` (else the ``aws`` integrations) runs the tasks no handler takes;
    ``nested`` (default: no ``invoker``) starts ``states:startExecution``
    children through ``api``. Cells' effects are journaled in ``log``; built-in
    AWS effects (only with ``aws``) never reach ``given_log``'s own table.
    """
    integrations = invoker if invoker is not None else aws_invoker(aws, region)
    runs: TaskInvoker | None = integrations
    sent: TaskInvoker | None = integrations
    if nested if nested is not None else invoker is None:
        # states:startExecution starts children through the environment's own API.
        starter = EnvironmentStarter(api)
        runs = NestedTasks(starter, integrations or task_invoker(handlers, virtual_time=True))
        sent = NestedTasks(starter, integrations or _sent)
    modules = cell_modules(cells)
    clients = aws_clients(aws, region)
    # Built-in effects under the cells' own handlers; AWS ones only with ``aws``; never on
    # the environment's own table (the DynamoDB log of open_environment("moto")).
    table = getattr(given_log, "table", None)
    own = OwnResources.of(tables=[table] if isinstance(table, str) else [])
    builtin = builtin_handlers(default_registry() if clients else None, clients, None, own)
    runtime = CellRuntime(
        modules.cells,
        builtin.merged(modules.handlers),
        LogJournal(log),
        clients,
    )
    inner = task_invoker(
        handlers,
        fallback=CellTasks(runtime, runs or task_invoker(handlers, virtual_time=True)),
        virtual_time=True,
    )
    return modules, runtime, CallbackTasks(handlers, inner, integrations=sent)


def cell_router(
    cell_queues: str | Mapping[str, str] | None,
    router: TaskRouter,
    queue: InMemoryTaskQueue,
    bus: InMemoryBus,
    clock: Callable[[], float],
    payloads: PayloadStore | None = None,
) -> TaskRouter:
    """The activity ``router``, behind the cell queues' router when cells are routed.

    ``payloads`` holds the cell task messages over SQS's limit.
    """
    queues = CellQueues.parse(cell_queues)
    if not queues:
        return router
    return CellRouter(
        queues,
        queue,
        signer=bus.signer,
        inner=router,
        bus=bus,
        clock=clock,
        payloads=payloads,
    )


def activity_task(task: dict[str, Any], arn: str) -> OpenTask:
    """The activity task ``get_activity_task`` handed out for ``arn``, as an open task."""
    token = parse_token(task["taskToken"])
    return OpenTask(
        "activity",
        task["taskToken"],
        token.execution_arn,
        token.task_id,
        "",
        arn,
        json.loads(task["input"]),
    )


def _sent(body: dict[str, Any]) -> TaskOutcome:
    """A callback task's request with no integration to send it: nothing sent."""
    return TaskOutcome.succeeded(None)


def cpu_budgets(limits: Limits) -> Callable[[], Budget]:
    """Budgets on the evaluating thread's CPU time.

    It is slow to read (about 2 us): read on one check in 16, and then only once a
    millisecond has passed on the wall clock since it was last read.
    """
    return clock_budgets(limits, time.thread_time, every=16, gate=time.perf_counter)


def parameter_check(
    handlers: Mapping[str, Handler], invoker: TaskInvoker | None, given: ParameterCheck | None
) -> ParameterCheck | None:
    """The check (``given``, else the registry's) of the tasks no handler takes.

    None when ``invoker`` replaces the integrations and no check is given: that
    invoker alone knows what it runs.
    """
    if given is None and invoker is not None:
        return None
    return unbound_check(handlers, given or default_registry().parameters_problem)
