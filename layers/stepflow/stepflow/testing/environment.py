"""A time-skipping test environment: the runtime's Stepper over in-memory ports.

Executions run exactly as in production (the :class:`~stepflow.runtime.Stepper`
committing to a coordination log, child executions, the outbox, leases and
fencing), but every queue is simulated on a virtual clock: a Wait of a year
takes no real time. Task reports go through the same
:class:`~stepflow.activities.ActivityService` as the Step Functions API.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

from stepflow.activities import ActivityError, ActivityService
from stepflow.activities.tokens import parse as parse_token
from stepflow.asl import StateMachine, parse
from stepflow.cells import CellModules, CellRuntime, CellTasks, LogJournal, cell_modules
from stepflow.cells.queues import CellQueues, CellRouter
from stepflow.data.budget import Budget, clock_budgets
from stepflow.data.serialize import dumps
from stepflow.engine import ParameterCheck
from stepflow.engine.codec import decode_state
from stepflow.integrations import default_registry
from stepflow.limits import DEFAULT_LIMITS, Limits
from stepflow.runtime import CoordinationLog, InMemoryBus, InMemoryLog, Message, Stepper
from stepflow.runtime.clients import TaskClients
from stepflow.runtime.outcome import TaskInvoker, TaskOutcome
from stepflow.runtime.registry import InMemoryRegistry
from stepflow.runtime.stepper import DEFAULT_CHILD_LIMIT
from stepflow.runtime.task_queue import InMemoryTaskQueue, TaskRouter
from stepflow.testing.delivery import (
    MAX_RECEIVES,
    REDELIVERY_SECONDS,
    CountingLog,
    Deliver,
    DeliveryError,
    handle_batch,
)
from stepflow.testing.handlers import (
    Handler,
    aws_clients,
    aws_invoker,
    call_handler,
    find_handler,
    map_io,
    task_invoker,
    unbound_check,
)
from stepflow.testing.nested import EnvironmentStarter, NestedTasks, name_machine
from stepflow.testing.result import ExecutionResult
from stepflow.testing.tasks import AutoActivityRouter, CallbackTasks, OpenTask

if TYPE_CHECKING:  # the API runs synchronous Express executions in an environment
    from stepflow.api.service import StepFunctionsService

HISTORY_PAGE = 100_000
"""Events read per history page (few pages: the in-memory log decodes per commit)."""


class WorkflowEnvironment:
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
        self._counter = CountingLog(log if log is not None else InMemoryLog(), on_event)
        self.log = cast(CoordinationLog, self._counter)
        integrations = invoker if invoker is not None else aws_invoker(aws, region)
        self._role = f"arn:aws:iam::{account}:role/StepFlowExecutionRole"
        runs: TaskInvoker | None = integrations
        sent: TaskInvoker | None = integrations
        if nested if nested is not None else invoker is None:
            # states:startExecution starts children through the environment's own API.
            starter = EnvironmentStarter(lambda: self.api)
            runs = NestedTasks(starter, integrations or task_invoker(self.handlers))
            sent = NestedTasks(starter, integrations or _sent)
        self.cells = cell_modules(cells)
        self.cell_runtime = CellRuntime(
            self.cells.cells,
            self.cells.handlers,
            LogJournal(self.log),
            aws_clients(aws, region),
        )
        inner = task_invoker(
            self.handlers,
            fallback=CellTasks(self.cell_runtime, runs or task_invoker(self.handlers)),
        )
        self.tasks = CallbackTasks(self.handlers, inner, integrations=sent)
        self.router = AutoActivityRouter(
            self.queue, self.bus, lambda: self.activities, signer=self.bus.signer
        )
        self.objects: dict[tuple[str, str], bytes] = {}
        """S3 objects by ``(bucket, key)``, read and written by distributed Maps without ``aws``."""
        item_source, result_sink = map_io(aws, region, self.objects)
        self.stepper = Stepper(
            log=self.log,
            bus=self.bus,
            definitions=self._definition,
            clock=self.now,
            invoker=self.tasks,
            child_limit=child_limit,
            router=self._cell_router(cell_queues),
            limits=limits,
            budgets=budgets if budgets is not None else _cpu_budgets(limits),
            start_budgets=start_budgets,
            check_parameters=_parameter_check(self.handlers, invoker, check_parameters),
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
        )
        self._deliver = deliver or handle_batch
        self._definitions: dict[str, StateMachine] = {}
        self._handed_out: dict[tuple[str, str], OpenTask] = {}
        self._receives: dict[str, int] = {}
        self.messages = 0
        """Messages delivered so far (all executions)."""

    def _cell_router(self, cell_queues: str | Mapping[str, str] | None) -> TaskRouter:
        """The activity router, behind the cell queues' router when cells are routed."""
        queues = CellQueues.parse(cell_queues)
        if not queues:
            return self.router
        return CellRouter(
            queues, self.queue, signer=self.bus.signer, inner=self.router, clock=self.now
        )

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
            invoker=self.tasks,
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
        existing = self._definitions.setdefault(arn, machine)
        if existing is not machine and existing != machine:
            raise ValueError(f"state machine {name!r} is registered with another definition")
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
    ) -> str:
        """Start an execution (StartExecution) and return its ARN; nothing runs yet.

        ``definition`` is a definition, or the ARN :meth:`register` returned.
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
        )
        return record.execution_arn

    def stop(
        self, execution_arn: str, *, error: str | None = None, cause: str | None = None
    ) -> None:
        """StopExecution, then run until idle (its child executions stop too)."""
        self.stepper.stop_execution(execution_arn, error=error, cause=cause)
        self.run_until_idle()

    def result(self, execution_arn: str) -> ExecutionResult:
        """The execution's status, output or error, and full history."""
        record = self.log.get(execution_arn)
        if record is None:
            raise KeyError(f"no execution {execution_arn}")
        state = decode_state(record.state)
        return ExecutionResult(
            status=state.status,
            output=dumps(state.output) if state.status == "SUCCEEDED" else None,
            error=state.error,
            cause=state.cause,
            history=self.history(execution_arn),
        )

    def describe(self, execution_arn: str) -> dict[str, Any]:
        """The execution in the shape of DescribeExecution's response."""
        record = self.log.get(execution_arn)
        if record is None:
            raise KeyError(f"no execution {execution_arn}")
        state = decode_state(record.state)
        found: dict[str, Any] = {
            "executionArn": execution_arn,
            "stateMachineArn": record.state_machine_arn,
            "name": record.name,
            "status": record.status,
            "startDate": record.start_date,
            "input": dumps(record.input),
        }
        if record.stop_date is not None:
            found["stopDate"] = record.stop_date
        if state.status == "SUCCEEDED":
            found["output"] = dumps(state.output)
        found.update({k: v for k, v in (("error", state.error), ("cause", state.cause)) if v})
        return found

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        """Every history event of the execution, in order (GetExecutionHistory shape)."""
        events: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = self.log.history(execution_arn, next_token=token, limit=HISTORY_PAGE)
            events.extend(page.events)
            if page.next_token is None:
                return events
            token = page.next_token

    # -- time ---------------------------------------------------------------------

    def run_until_idle(self) -> None:
        """Deliver every message due now and answer tasks with handlers; no time passes."""
        while True:
            due = self.bus.next_due()
            if due is not None and due <= self.bus.now:
                self._process(self.bus.receive_batch(10))
            elif not self._answer():
                return

    def run(self, execution_arn: str | None = None, *, skip_open_tasks: bool = False) -> None:
        """Run, skipping time, until ``execution_arn`` ends (None: every execution).

        Time skips from timer to timer, but not past a task waiting for the
        test (an open callback or activity task without a handler): ``run``
        returns instead, so the test can answer it (or :meth:`advance` to let
        it time out). With ``skip_open_tasks`` it skips on as long as timers
        are pending, as an execution nobody answers would. Either way it
        returns, with the execution RUNNING, when nothing is pending at all.
        """
        while True:
            self.run_until_idle()
            if execution_arn is not None:
                record = self.log.get(execution_arn)
                if record is None or record.status != "RUNNING":
                    return
            if not skip_open_tasks and self._awaits_test():
                return
            if self.skip_to_next_timer() is None:
                return

    def skip_to_next_timer(self) -> float | None:
        """Move the clock to the next timer (or delayed message) and deliver what is due.

        Returns the new time; None (the clock unmoved) when nothing is pending.
        """
        self.run_until_idle()
        due = self.bus.next_due()
        if due is None:
            return None
        self.bus.now = max(self.bus.now, due)
        self.run_until_idle()
        return self.bus.now

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass, firing every timer due on the way in order."""
        target = self.bus.now + seconds
        self.run_until_idle()
        while (due := self.bus.next_due()) is not None and due <= target:
            self.bus.now = max(self.bus.now, due)
            self.run_until_idle()
        self.bus.now = max(self.bus.now, target)
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
                handed = _activity_task(task, arn)
                self._handed_out[(handed.execution_arn, handed.task_id)] = handed
        self.tasks.open = {t.token: t for t in self.tasks.open.values() if self._is_open(t)}
        self._handed_out = {k: t for k, t in self._handed_out.items() if self._is_open(t)}
        found = [*self.tasks.open.values(), *self._handed_out.values()]
        if execution_arn is not None:
            found = [t for t in found if self._root_of(t.execution_arn) == execution_arn]
        return found

    def _root_of(self, arn: str) -> str:
        """The execution a task's execution belongs to (an inline Map's iteration: its root)."""
        record = self.log.get(arn)
        parent = record.state.get("parent") if record is not None else None
        if isinstance(parent, dict) and parent.get("root_arn"):
            return str(parent["root_arn"]).split("#")[0]
        return arn.split("#")[0]

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

    def _process(self, batch: list[Message]) -> None:
        now = self.bus.now
        early = [m for m in batch if m.not_before > now]
        if early:
            # What the stepper does with an early message (send it back delayed), minus
            # SQS's 900 s cap on a delay: a Wait of a year is then one hop, not 35,040.
            for message in early:
                self.bus.ack(message)
                self.bus.send(message, math.ceil(message.not_before - now))
            batch = [m for m in batch if m.not_before <= now]
            if not batch:
                return
        self.messages += len(batch)
        failures = self._deliver(self.stepper, batch)
        for message in batch:
            self.bus.ack(message)
        for message, exc in failures:
            count = self._receives[message.id] = self._receives.get(message.id, 0) + 1
            if count >= MAX_RECEIVES:
                raise DeliveryError(f"message {message.id} failed {count} times: {exc}") from exc
            self.bus.send(message, REDELIVERY_SECONDS)

    def _answer(self) -> bool:
        """Send the handlers' queued reports and run activity handlers; True if any."""
        acted = False
        while self.tasks.reports:
            token, outcome = self.tasks.reports.pop(0)
            acted = True
            try:
                if outcome.ok:
                    output = dumps(outcome.output)
                    self.activities.send_task_success({"taskToken": token, "output": output})
                else:
                    failure = {"error": outcome.error, "cause": outcome.cause}
                    request = {k: v for k, v in failure.items() if v is not None}
                    self.activities.send_task_failure({"taskToken": token, **request})
            except ActivityError:
                pass  # the task timed out or was stopped meanwhile: as the API refuses it
        for queue, arn in self.router.arns.items():
            found = find_handler(self.handlers, arn, None)
            while found is not None and self.queue.pending(queue):
                task = self.activities.get_activity_task({"activityArn": arn, "waitSeconds": 0})
                if not task:
                    break
                value = _activity_task(task, arn).input
                outcome = call_handler(found[0], value, arn)
                self.tasks.reports.append((task["taskToken"], outcome))
                acted = True
        return acted or bool(self.tasks.reports)

    def _awaits_test(self) -> bool:
        """True if a callback or an activity task without a handler waits for an answer."""
        self.tasks.open = {t.token: t for t in self.tasks.open.values() if self._is_open(t)}
        if self.tasks.open:
            return True
        return any(
            self.queue.pending(queue) and find_handler(self.handlers, arn, None) is None
            for queue, arn in self.router.arns.items()
        )

    def _is_open(self, task: OpenTask) -> bool:
        record = self.log.get(task.execution_arn)
        if record is None or record.status != "RUNNING":
            return False
        return task.task_id in decode_state(record.state).tasks


def _activity_task(task: dict[str, Any], arn: str) -> OpenTask:
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


__all__ = ["DeliveryError", "OpenTask", "WorkflowEnvironment"]


def _sent(body: dict[str, Any]) -> TaskOutcome:
    """A callback task's request with no integration to send it: nothing sent."""
    return TaskOutcome.succeeded(None)


def _cpu_budgets(limits: Limits) -> Callable[[], Budget]:
    """Budgets on the evaluating thread's CPU time (read on one check in 16: it is slow)."""
    return clock_budgets(limits, time.thread_time, every=16)


def _parameter_check(
    handlers: Mapping[str, Handler], invoker: TaskInvoker | None, given: ParameterCheck | None
) -> ParameterCheck | None:
    """The check (``given``, else the registry's) of the tasks no handler takes.

    None when ``invoker`` replaces the integrations and no check is given: that
    invoker alone knows what it runs.
    """
    if given is None and invoker is not None:
        return None
    return unbound_check(handlers, given or default_registry().parameters_problem)
