"""A time-skipping test environment: the runtime's Stepper over in-memory ports.

Executions run exactly as in production (the :class:`~stepflow.runtime.Stepper`
committing to a coordination log, child executions, the outbox, leases and
fencing), but every queue is simulated on a virtual clock: a Wait of a year
takes no real time. Task reports go through the same
:class:`~stepflow.activities.ActivityService` as the Step Functions API.
Its bases: the delivery loop (:mod:`~stepflow.testing.environment_delivery`) and
the reads of results and histories (:mod:`~stepflow.testing.environment_reads`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

from stepflow.activities import ActivityService
from stepflow.asl import StateMachine, parse
from stepflow.cells import CellModules
from stepflow.data.budget import Budget
from stepflow.data.serialize import dumps
from stepflow.engine import ParameterCheck
from stepflow.limits import DEFAULT_LIMITS, Limits
from stepflow.runtime import CoordinationLog, InMemoryBus, InMemoryLog, Stepper
from stepflow.runtime.clients import TaskClients
from stepflow.runtime.outcome import TaskInvoker
from stepflow.runtime.payloads import InMemoryPayloadStore
from stepflow.runtime.registry import InMemoryRegistry
from stepflow.runtime.stepper import DEFAULT_CHILD_LIMIT
from stepflow.runtime.task_queue import InMemoryTaskQueue
from stepflow.testing.delivery import Deliver, DeliveryError, ReportingLog, handle_batch
from stepflow.testing.environment_delivery import MessageDelivery
from stepflow.testing.environment_mocks import MockSource, TaskFront
from stepflow.testing.environment_reads import ExecutionReads
from stepflow.testing.environment_tasks import (
    activity_task,
    cell_router,
    cpu_budgets,
    parameter_check,
    task_ports,
)
from stepflow.testing.handlers import Handler, find_handler, map_io
from stepflow.testing.mocks import root_of
from stepflow.testing.nested import name_machine
from stepflow.testing.tasks import AutoActivityRouter, OpenTask

if TYPE_CHECKING:  # the API runs synchronous Express executions in an environment
    from stepflow.api.service import StepFunctionsService


class WorkflowEnvironment(MessageDelivery, ExecutionReads):
    """Run executions of one or more definitions in process, on a virtual clock.

    ``handlers`` maps a Task resource, a Lambda function name or an activity
    ARN to ``fn(input) -> output`` (an exception fails the task with its
    ``error`` attribute or class name). A handler bound to a
    ``.waitForTaskToken`` resource or an activity is answered through the
    activity service: its return value is sent as SendTaskSuccess with the
    task's token, an exception as SendTaskFailure. Without a handler such a
    task stays open: see :meth:`open_tasks`, :meth:`complete` and :meth:`fail`.
    ``aws`` runs the tasks no handler is bound to through StepFlow's
    integrations (:class:`~stepflow.integrations.IntegrationInvoker`), as a
    deployment does: True calls AWS with the process's credentials (inside
    moto's ``mock_aws()``, a real moto table, queue or function, in
    milliseconds); a :class:`~stepflow.runtime.clients.TaskClients` hands out
    the clients. ``invoker`` replaces those integrations (e.g. the API's own).
    Either one also sends the requests of callback tasks (which then stay
    open); without both, a task with no handler fails, naming the options.

    Time passes only when asked: :meth:`run_until_idle` delivers what is due
    now, :meth:`advance` and :meth:`skip_to_next_timer` move the clock, and
    :meth:`run` skips time until an execution ends or nothing more can happen
    without outside input. Runaway loops are stopped by the same rule as in
    the durable runtime: an execution whose history would pass
    ``limits.max_events_per_execution`` events fails with ``States.Runtime``
    (``max_events``, when given, sets that limit).

    For other backends and measurements: ``log`` replaces the in-memory log
    (e.g. the DynamoDB log, see :func:`stepflow.testing.open_environment`),
    ``bus`` the in-memory bus (its clock is then the environment's), and
    ``deliver`` how a batch reaches the stepper (e.g. through its Lambda handler).
    Evaluation is bounded as in a deployment: ``budgets`` makes one time budget per
    decision (default: ``limits``' expression and decision budgets, counted in the
    CPU time of the evaluating thread, so that a busy test machine does not fail an
    execution a deployment would run; tests pass a fake), ``start_budgets`` the
    budget of the first decision of :meth:`start` (default: ``budgets``).

    ``cells`` are the effectful cells ``stepflow:cell:*`` tasks run (docs/cells.md): loaded
    :class:`~stepflow.cells.CellModules`, or module names, Cell classes and ``@handles``
    handlers; their effects are journaled in the environment's log, as deployed.
    ``cell_queues`` (as ``STEPFLOW_CELL_QUEUES``) sends cells to task queues instead: a
    :class:`~stepflow.worker.Worker` with a :class:`~stepflow.worker.CellHandler` over
    :attr:`activities` serves them (docs/cells-workers.md).

    As on AWS, a Task whose parameters its integration cannot use fails with
    ``States.Runtime`` before it is scheduled (no Task event): ``check_parameters``
    (default: the integration registry's, none when ``invoker`` is given) finds
    them; a task a handler takes is never checked.

    ``states:startExecution`` tasks (every pattern) start their children through
    the environment's own Step Functions API (:attr:`api`), which knows every
    :meth:`register`-ed machine: ``nested`` True, the default when no ``invoker``
    is given. An ``invoker`` otherwise decides (the API's own starts executions of
    its deployment); ``nested=True`` routes them to the environment anyway.

    ``mock_config`` (Step Functions Local's ``MockConfigFile.json``, a path or its object)
    with ``test_case`` answers the mocked Task states of the executions :meth:`start` starts
    of a state machine the config names (the name it is registered under), before handlers;
    :attr:`mocks` counts the calls (see :mod:`stepflow.testing.environment_mocks`). A handler
    may answer with :class:`~stepflow.testing.Delay` or ``NO_ANSWER`` (see
    :mod:`stepflow.testing.timing`).
    """

    def __init__(
        self,
        *,
        handlers: Mapping[str, Handler] | None = None,
        invoker: TaskInvoker | None = None,
        aws: bool | TaskClients = False,
        start_time: datetime | float | None = None,
        child_limit: int | None = DEFAULT_CHILD_LIMIT,
        region: str = "us-east-1",
        account: str = "123456789012",
        max_events: int | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        log: CoordinationLog | None = None,
        bus: InMemoryBus | None = None,
        deliver: Deliver | None = None,
        limits: Limits = DEFAULT_LIMITS,
        budgets: Callable[[], Budget] | None = None,
        start_budgets: Callable[[], Budget] | None = None,
        check_parameters: ParameterCheck | None = None,
        nested: bool | None = None,
        cells: CellModules | Iterable[str | type[Any]] | None = None,
        cell_queues: str | Mapping[str, str] | None = None,
        mock_config: MockSource | None = None,
        test_case: str | None = None,
    ) -> None:
        if isinstance(start_time, datetime):
            now = start_time.timestamp()
        else:
            now = round(time.time(), 3) if start_time is None else float(start_time)
        self.region, self.account = region, account
        self.handlers = dict(handlers or {})
        self.bus = bus if bus is not None else InMemoryBus(now)
        self.queue = InMemoryTaskQueue(clock=self.now)
        if max_events is not None:
            limits = replace(limits, max_events_per_execution=max_events)
        self._counter = ReportingLog(log if log is not None else InMemoryLog(), on_event)
        self.log = cast(CoordinationLog, self._counter)
        self._role = f"arn:aws:iam::{account}:role/StepFlowExecutionRole"
        self.cells, self.cell_runtime, self.tasks = task_ports(
            self.handlers,
            invoker,
            aws,
            region,
            nested=nested,
            api=lambda: self.api,
            cells=cells,
            log=self.log,
            given_log=log,
        )
        self.tasks.clock = self.now
        self.front = TaskFront(mock_config, test_case, self.log, self.tasks, self.now)
        self.mocks, self.timing = self.front.mocks, self.front.timing
        self.invoker: TaskInvoker = self.front.invoker
        """The stepper's task invoker: delayed handlers' outcomes, mocks, then the tasks."""
        self.stored = InMemoryPayloadStore()
        """Task messages over SQS's limit, as the deployed task queues offload them."""
        self.router = AutoActivityRouter(
            self.queue,
            self.bus,
            lambda: self.activities,
            signer=self.bus.signer,
            payloads=self.stored,
        )
        self.objects: dict[tuple[str, str], bytes] = {}
        """S3 objects by ``(bucket, key)``, read and written by distributed Maps without ``aws``."""
        item_source, result_sink = map_io(aws, region, self.objects)
        self.stepper = Stepper(
            log=self.log,
            bus=self.bus,
            definitions=self._definition,
            clock=self.now,
            invoker=self.invoker,
            child_limit=child_limit,
            router=cell_router(
                cell_queues, self.router, self.queue, self.bus, self.now, self.stored
            ),
            limits=limits,
            budgets=budgets if budgets is not None else cpu_budgets(limits),
            start_budgets=start_budgets,
            check_parameters=parameter_check(self.handlers, invoker, check_parameters),
            item_source=item_source,
            result_sink=result_sink,
        )
        self.activities = ActivityService(
            stepper=self.stepper,
            queue=self.queue,
            signer=self.bus.signer,
            region=region,
            account=self.account,
            clock=self.now,
            payloads=self.stored,
        )
        self._deliver = deliver or handle_batch
        self._definitions: dict[str, StateMachine] = {}
        self._handed_out: dict[tuple[str, str], OpenTask] = {}
        self._receives: dict[str, int] = {}
        self.messages = 0
        """Messages delivered so far (all executions)."""

    def now(self) -> float:
        """The virtual clock, in epoch seconds."""
        return self.bus.now

    @cached_property
    def api(self) -> StepFunctionsService:
        """The Step Functions API over this environment's log, bus and stepper.

        Nested ``states:startExecution`` tasks start their children through it; a
        test may call it too (``env.api.call("DescribeExecution", {...})``).
        """
        from stepflow.api.arns import Scope
        from stepflow.api.service import StepFunctionsService

        api = StepFunctionsService(
            log=self.log,
            bus=self.bus,
            registry=InMemoryRegistry(),
            invoker=self.invoker,
            scope=Scope(self.region, self.account),
            clock=self.now,
            stepper=self.stepper,
        )
        for arn in self._definitions:
            name_machine(api, arn, self._role)
        return api

    # -- executions ---------------------------------------------------------------

    def register(
        self, definition: str | Mapping[str, Any] | StateMachine, name: str = "StateMachine"
    ) -> str:
        """Register a definition as state machine ``name``; return its ARN.

        Registering another definition under the same name raises ValueError.
        """
        machine = definition if isinstance(definition, StateMachine) else parse(definition)
        arn = f"arn:aws:states:{self.region}:{self.account}:stateMachine:{name}"
        existing = self._definitions.get(arn)
        if existing is not None and existing is not machine and existing != machine:
            raise ValueError(f"state machine {name!r} is registered with another definition")
        if existing is None:
            self.front.check(name, machine)
            self._definitions[arn] = machine
        if "api" in self.__dict__:  # the API knows every registered machine by name
            name_machine(self.api, arn, self._role)
        return arn

    def start(
        self,
        definition: str | Mapping[str, Any] | StateMachine,
        input: Any = None,
        *,
        name: str | None = None,
        state_machine: str = "StateMachine",
        seed: int | None = 0,
        role_arn: str | None = None,
    ) -> str:
        """Start an execution (StartExecution) and return its ARN; nothing runs yet.

        ``definition`` is a definition, or the ARN :meth:`register` returned.
        ``role_arn`` is the state machine's role the execution runs with (its
        history and ``$$.Execution.RoleArn``; None: ``role/StepFlowExecutionRole``).
        Call :meth:`run` or :meth:`run_until_idle` to let it proceed.
        """
        if isinstance(definition, str) and definition.startswith("arn:"):
            arn = definition
            self._definition(arn)
        else:
            arn = self.register(definition, state_machine)
        record = self.stepper.start_execution(
            state_machine_arn=arn,
            name=name or str(uuid.uuid4()),
            input={} if input is None else input,
            seed=seed if seed is not None else uuid.uuid4().int >> 65,
            role_arn=role_arn,
        )
        self.front.started(record.execution_arn)
        return record.execution_arn

    def stop(
        self, execution_arn: str, *, error: str | None = None, cause: str | None = None
    ) -> None:
        """StopExecution, then run until idle (its child executions stop too)."""
        self.stepper.stop_execution(execution_arn, error=error, cause=cause)
        self.run_until_idle()

    # -- tasks --------------------------------------------------------------------

    def open_tasks(self, execution_arn: str | None = None) -> list[OpenTask]:
        """The callback and activity tasks waiting for an answer (callbacks first).

        Activity tasks without a handler are handed out to the test here (as
        GetActivityTask would: the history records ActivityStarted), so each
        has its delivery's token. ``execution_arn`` limits the list to one
        execution and its child executions.
        """
        for queue, arn in self.router.arns.items():
            while self.queue.pending(queue) and find_handler(self.handlers, arn, None) is None:
                task = self.activities.get_activity_task({"activityArn": arn, "waitSeconds": 0})
                if not task:
                    break
                handed = activity_task(task, arn)
                self._handed_out[(handed.execution_arn, handed.task_id)] = handed
        self.tasks.open = {t.token: t for t in self.tasks.open.values() if self._is_open(t)}
        self._handed_out = {k: t for k, t in self._handed_out.items() if self._is_open(t)}
        found = [*self.tasks.open.values(), *self._handed_out.values()]
        if execution_arn is not None:
            found = [t for t in found if self._root_of(t.execution_arn) == execution_arn]
        return found

    def _root_of(self, arn: str) -> str:
        """The execution a task's execution belongs to (an inline Map's iteration: its root)."""
        return root_of(self.log, arn)

    def complete(self, token: str, output: Any = None) -> None:
        """SendTaskSuccess with ``output`` (any JSON value), then run until idle.

        Raises :class:`~stepflow.activities.ActivityError` (``InvalidToken``,
        ``TaskTimedOut``) when the service refuses the token.
        """
        self.activities.send_task_success({"taskToken": token, "output": dumps(output)})
        self.run_until_idle()

    def fail(self, token: str, error: str | None = None, cause: str | None = None) -> None:
        """SendTaskFailure, then run until idle."""
        request = {"taskToken": token, "error": error, "cause": cause}
        self.activities.send_task_failure({k: v for k, v in request.items() if v is not None})
        self.run_until_idle()

    def heartbeat(self, token: str) -> None:
        """SendTaskHeartbeat (resets a ``HeartbeatSeconds`` timer; extends an activity lease)."""
        self.activities.send_task_heartbeat({"taskToken": token})

    # -- internals ----------------------------------------------------------------

    def _definition(self, state_machine_arn: str) -> StateMachine:
        unqualified = ":".join(state_machine_arn.split(":")[:7])
        try:
            return self._definitions[unqualified]
        except KeyError:
            raise LookupError(f"no definition registered for {state_machine_arn}") from None


__all__ = ["DeliveryError", "OpenTask", "WorkflowEnvironment"]
