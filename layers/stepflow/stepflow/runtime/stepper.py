"""The durable driver: load an execution, decide, commit, then send what the decision asks.

One :class:`Stepper` serves every execution. It is safe under at-least-once
delivery, crashes and concurrent steppers because:

- a decision commits only on top of the record it was made from (conditional
  write on ``seq``); a loser reloads and decides again;
- the engine itself ignores stale and duplicate events (a finished task's
  result, a fired timer, a second Start), so a redelivered message is
  acknowledged without effect;
- the messages a decision must send are committed with it (the outbox) and
  re-sent by the next delivery if the sender crashed after the commit.

The Stepper decides and commits; its collaborators live next to it:
:mod:`stepflow.runtime.stepper_batch` (a batch of deliveries, a map run's child starts),
:mod:`stepflow.runtime.stepper_commit` (deciding, committing, running inline tasks),
:mod:`stepflow.runtime.outbox` (a decision's messages and child executions),
:mod:`stepflow.runtime.task_runs` (running and claiming tasks under leases) and
:mod:`stepflow.runtime.repair` (sending an outbox, repair messages).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from stepflow.asl import StateMachine
from stepflow.data.budget import UNLIMITED, Budget
from stepflow.engine import Event, ExecutionState, ParameterCheck, Redrive, Stop, decide
from stepflow.engine.codec import decode_state
from stepflow.engine.history_events import HistoryEvent, takes_compact_events
from stepflow.limits import DEFAULT_LIMITS, Limits
from stepflow.runtime.held_mark import held
from stepflow.runtime.map_io import ItemSource, ResultSink
from stepflow.runtime.map_pages import PageCache
from stepflow.runtime.map_run_access import MapRunStartCheck
from stepflow.runtime.map_runs import MapRuns
from stepflow.runtime.messages import Message
from stepflow.runtime.outbox import MAX_DELAY_SECONDS as MAX_DELAY_SECONDS
from stepflow.runtime.outbox import child_arn
from stepflow.runtime.outcome import TaskInvoker
from stepflow.runtime.ports import (
    CoordinationLog,
    ExecutionAlreadyExistsError,
    ExecutionRecord,
    MessageBus,
    UnstorableDataError,
)
from stepflow.runtime.repair import OutboxSender
from stepflow.runtime.runner_group import GROUP_WAIT_SECONDS
from stepflow.runtime.starts import (
    ExecutionInputMismatchError,
    NewExecution,
    first_decision,
    first_record,
    first_state,
    unstorable,
)
from stepflow.runtime.stepper_batch import run_batch
from stepflow.runtime.stepper_commit import TaskGuard as TaskGuard
from stepflow.runtime.stepper_commit import apply_events
from stepflow.runtime.task_queue import TaskRouter
from stepflow.runtime.task_runs import TaskLeaseHeldError as TaskLeaseHeldError
from stepflow.runtime.task_runs import TaskRuns

DEFAULT_CHILD_LIMIT = 40
"""An inline Map with more items than this runs them in a map run (engine.map_inline)."""


class Stepper:
    """Advances executions stored in a coordination log, one message at a time."""

    def __init__(
        self,
        *,
        log: CoordinationLog,
        bus: MessageBus,
        definitions: Callable[[str], StateMachine],
        clock: Callable[[], float],
        invoker: TaskInvoker,
        max_conflicts: int = 20,
        owner: str | None = None,
        task_lease_seconds: float = 900.0,
        inline_tasks: bool = True,
        max_inline_rounds: int = 50,
        child_limit: int | None = DEFAULT_CHILD_LIMIT,
        router: TaskRouter | None = None,
        tasks_bus: MessageBus | None = None,
        repair_delay: int = 0,
        failed_send_repair: int = 0,
        limits: Limits = DEFAULT_LIMITS,
        budgets: Callable[[], Budget] | None = None,
        start_budgets: Callable[[], Budget] | None = None,
        check_parameters: ParameterCheck | None = None,
        item_source: ItemSource | None = None,
        result_sink: ResultSink | None = None,
        map_run_check: MapRunStartCheck | None = None,
        task_concurrency: int = 1,
        task_group_wait: float = GROUP_WAIT_SECONDS,
        task_runner: bool = False,
        lone_task_groups: bool = True,
    ) -> None:
        self.log = log
        self.bus = bus
        self.definitions = definitions
        self.clock = clock
        self.invoker = invoker
        self.max_conflicts = max_conflicts
        self.owner = owner or uuid.uuid4().hex
        self.task_lease_seconds = task_lease_seconds
        self.inline_tasks = inline_tasks
        self.max_inline_rounds = max_inline_rounds
        self.child_limit = child_limit
        self.router = router
        self.tasks_bus = tasks_bus
        """Where task messages go when not run inline (None: ``bus``): a runner's queue."""
        self.repair_delay = repair_delay
        """Seconds: when > 0, a delayed ``repair`` message precedes every commit (the API's
        stepper before round 11), so an outbox left unsent by a crash right after the commit
        is re-sent."""
        self.failed_send_repair = failed_send_repair
        """Seconds: when > 0, a failed send of an outbox leaves a delayed ``repair`` message
        (the API's stepper: its caller gets the error, and no queue redelivers)."""
        self.limits = limits
        """The bounds this stepper enforces (payload size, events, evaluation budgets)."""
        self.budgets = budgets
        """A fresh time budget per decision (None: unbounded); see :mod:`stepflow.data.budget`."""
        self.start_budgets = start_budgets
        """The budget of StartExecution's first decision (None: ``budgets``). The API's may
        defer: past its deadline the first decision is left to the stepper behind the queue."""
        self.check_parameters = check_parameters
        """Why a Task's effective parameters cannot start it (None: no check): the edge's
        integration registry, handed to every decision (see :func:`stepflow.engine.decide`)."""
        self.item_source = item_source
        """Where a distributed Map's ``ItemReader`` reads its items (None: none configured)."""
        self.result_sink = result_sink
        """Where a distributed Map's ``ResultWriter`` writes its results (None: none configured)."""
        self.map_run_check = map_run_check
        """Whether a distributed Map's role may start its children (None: not checked)."""
        self.task_concurrency = task_concurrency
        """How many queued task messages of one batch run at a time (the runner's: ten)."""
        self.task_group_wait = task_group_wait
        """Seconds a queued task's result may wait for its execution's other tasks of the
        batch, to be committed with them (see :mod:`stepflow.runtime.runner_commit`)."""
        self.task_runner = task_runner
        """Whether this stepper consumes the tasks queue (the runner Lambda): a batch of
        timers alone (a retry's, :func:`~stepflow.runtime.repair.rides_tasks`) is applied
        in place, so that the attempts its commits schedule run in this invocation."""
        self.lone_task_groups = lone_task_groups
        """Whether a lone task travels as a group of one (True) or in the single shape, under
        its own ``TK#`` lease (the first deploy of an upgrade: docs/deploy.md). Every function
        of a deployment must agree: a task re-sent in the other shape takes another lease."""
        self._root_inputs: dict[str, Any] = {}
        self._pages: PageCache | None = None

    def start_execution(
        self,
        *,
        state_machine_arn: str,
        name: str,
        input: Any,
        seed: int,
        attributes: Mapping[str, Any] | None = None,
        role_arn: str | None = None,
        caller: Mapping[str, Any] | None = None,
    ) -> ExecutionRecord:
        """Create an execution and run its first decision; idempotent by name.

        The same name with the same input returns the existing execution; a
        different input raises :class:`ExecutionInputMismatchError`.
        ``attributes`` are kept in the head (e.g. the principal that started it).
        ``role_arn`` is the state machine's role, the execution's (None: the default).
        ``caller`` is the ``.sync`` task waiting for its end (:mod:`stepflow.runtime.nested`).
        """
        definition = self.definitions(state_machine_arn)
        new = NewExecution(
            state_machine_arn,
            name,
            input,
            self.clock(),
            dict(attributes or {}),
            role_arn,
            dict(caller) if caller is not None else None,
        )
        state = first_state(new, seed=seed, child_limit=self.child_limit)
        decision, deferred = first_decision(
            definition,
            state,
            new.now,
            budget=self._budget(start=True),
            limits=self.limits,
            check_parameters=self.check_parameters,
            defer=caller is not None,
            compact=takes_compact_events(self.log),
        )
        try:
            try:
                record = self._create(first_record(new, decision, deferred), decision.events)
            except UnstorableDataError as exc:  # its first decision made data no log can hold
                failed = decide(definition, state, unstorable(exc), new.now, limits=self.limits)
                record = self._create(first_record(new, failed, ()), failed.events)
        except ExecutionAlreadyExistsError as exc:
            existing = exc.existing
            if existing.input != input or existing.state_machine_arn != state_machine_arn:
                raise ExecutionInputMismatchError(
                    f"execution {name!r} already exists with a different input"
                ) from exc
            if not held(existing, self.clock()):  # a runner holds its tasks: not re-sent
                self._flush(existing, inline=False)
            return existing
        self._flush(record, inline=False)
        return record

    def _create(self, record: ExecutionRecord, events: list[HistoryEvent]) -> ExecutionRecord:
        """Store a new execution's record and first events (a repair message first)."""
        if record.outbox:
            self._send_repair(record.execution_arn, ending=record.status != "RUNNING")
        self.log.create(record, events)
        return record

    def handle(self, message: Message) -> None:
        """Process one delivery. Raises (so the message is redelivered) only on failure."""
        failures = self.handle_batch([message])
        if failures:
            raise failures[0][1]

    def handle_batch(
        self,
        messages: Sequence[Message],
        has_time: Callable[[], bool] | None = None,
        remaining: Callable[[], float] | None = None,
    ) -> list[tuple[Message, Exception]]:
        """Process a batch of deliveries; return those that failed (to be redelivered).

        The events of one execution are decided one after the other on the same
        loaded record and committed together: a Map's ten task results arriving
        in one batch cost one commit, not ten. ``has_time`` is asked before each
        message or execution is started: once it answers no (the Lambda is about
        to time out), the rest are sent again as new messages, so a slow
        execution in the batch costs the others a redelivery, never a receive
        count towards the dead-letter queue. ``remaining`` is the invocation's
        seconds left: a task group's member starts only if they cover it.
        """
        return run_batch(self, messages, has_time, remaining)

    def redrive_execution(
        self, execution_arn: str, *, attributes: Mapping[str, Any] | None = None
    ) -> ExecutionRecord | None:
        """RedriveExecution: run a FAILED, TIMED_OUT or ABORTED execution again.

        Returns the record after the redrive (unchanged if it could not be redriven).
        ``attributes`` go into the head with the redrive (e.g. who asked for it).
        """
        apply_events(self, execution_arn, [Redrive()], attributes=attributes)
        return self.log.get(execution_arn)

    def stop_execution(
        self,
        execution_arn: str,
        *,
        error: str | None = None,
        cause: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> ExecutionRecord | None:
        """StopExecution: abort a running execution (no effect on a finished one).

        ``attributes`` go into the head with the stop (e.g. who asked for it).
        """
        apply_events(self, execution_arn, [Stop(error, cause)], attributes=attributes)
        return self.log.get(execution_arn)

    def report_task(self, execution_arn: str, event: Event, guard: TaskGuard) -> None:
        """Apply a worker's report on a deferred task (started, heartbeat, result).

        ``guard`` sees the latest record before each attempt to commit: it
        refuses the report by raising (nothing is written) or returns head
        attributes to commit with it. The engine ignores a report on an attempt
        that is no longer open, so a guard must refuse those.
        """
        apply_events(self, execution_arn, [event], guard)

    def _budget(self, *, start: bool = False) -> Budget:
        """A fresh time budget for one decision."""
        factory = (self.start_budgets or self.budgets) if start else self.budgets
        return UNLIMITED if factory is None else factory()

    def _load_state(self, record: ExecutionRecord) -> ExecutionState:
        """The engine state of ``record``; a child's ``$$.Execution.Input`` is its root's."""
        state = decode_state(record.state)
        if state.parent is not None:
            root = str(state.parent["root_arn"])
            if root == record.execution_arn:  # a map run's child is its own root
                state.input = record.input
                return state
            state.input = self._root_input(root)
        return state

    def _root_input(self, root: str) -> Any:
        """The input of the execution ``root`` (cached: it never changes)."""
        if root not in self._root_inputs:
            if len(self._root_inputs) >= 256:
                self._root_inputs.clear()
            root_record = self.log.get(root)
            self._root_inputs[root] = None if root_record is None else root_record.input
        return self._root_inputs[root]

    def _flush(
        self,
        record: ExecutionRecord,
        *,
        inline: bool | None = None,
        clear: bool = True,
        skip: frozenset[str] = frozenset(),
    ) -> list[Message]:
        """Send the outbox (not ``skip``); return its task messages instead when they run inline."""
        return self._sender().flush(record, inline=inline, clear=clear, skip=skip)

    def _send_repair(self, execution_arn: str, *, ending: bool = False) -> bool:
        """Before a commit: a delayed message whose delivery re-sends a still pending outbox.

        ``ending``: the commit ends the execution (see :meth:`OutboxSender.send_repair`).
        """
        return self._sender().send_repair(execution_arn, ending=ending)

    # The collaborators are built per call from the attributes as they are now:
    # tests and the stepper Lambda swap ``log``, ``invoker`` or ``definitions`` in place.
    def _tasks(self) -> TaskRuns:
        """The task path over this stepper's current log, bus and invoker."""
        return TaskRuns(
            log=self.log,
            bus=self.bus,
            invoker=self.invoker,
            clock=self.clock,
            owner=self.owner,
            task_lease_seconds=self.task_lease_seconds,
            router=self.router,
            limits=self.limits,
            tasks_bus=None if self.inline_tasks else self.tasks_bus,
        )

    def map_runs(self) -> MapRuns:
        """The map run coordinator over this stepper's current log, bus and ports."""
        if self._pages is None or self._pages.log is not self.log:
            self._pages = PageCache(self.log)
        return MapRuns(
            log=self.log,
            sender=self._sender(),
            clock=self.clock,
            definitions=self.definitions,
            item_source=self.item_source,
            result_sink=self.result_sink,
            pages=self._pages,
            invoker=self.invoker,
            owner=self.owner,
        )

    def _sender(self) -> OutboxSender:
        """The sending side over this stepper's current log and buses."""
        return OutboxSender(
            log=self.log,
            bus=self.bus,
            clock=self.clock,
            inline_tasks=self.inline_tasks,
            router=self.router,
            tasks_bus=self.tasks_bus,
            repair_delay=self.repair_delay,
            failed_send_repair=self.failed_send_repair,
            lone_task_groups=self.lone_task_groups,
        )


__all__ = [
    "DEFAULT_CHILD_LIMIT",
    "MAX_DELAY_SECONDS",
    "ExecutionInputMismatchError",
    "Stepper",
    "TaskGuard",
    "TaskLeaseHeldError",
    "child_arn",
]
