"""EXPRESS item batches of a distributed Map: many item executions run to completion in one go.

An EXPRESS item processor has no durable execution per item (issue 14, item 3). The map run
coordinator hands a batch of items (under its lease, once) to :func:`run_batch`, which runs
each item with the engine's own :func:`~stepflow.engine.decide` on state kept in memory
only, and runs every task inline through the runtime's one task invoker (Lambda and the
other integrations). No history is recorded (AWS keeps none for EXPRESS executions either:
GetExecutionHistory refuses them); each item's status, output or error and cause, and
start and stop dates are returned.

Nothing sleeps. An item that needs time to pass (a Wait state, a Retry interval) or that
the batch has no time left for is **parked**: it comes back ``PENDING`` with ``resume``
(its engine state, its scheduled tasks and its timers, plain JSON) and ``wake_at`` (epoch
seconds; None: at once). The coordinator re-arms it with a delayed message carrying that
result and passes it back in a later batch, which continues the item where it stopped: a
task that ran is never run again, and the item keeps the start date it had. A delayed
message rather than a STANDARD child: the item keeps EXPRESS semantics (no history, the
five-minute limit) and nothing already done is redone. An item that would run past five
minutes (:data:`EXPRESS_MAX_SECONDS`) ends ``TIMED_OUT`` with ``States.Timeout``, as AWS
times out an Express execution. Resources AWS refuses in EXPRESS (``.sync``,
``.waitForTaskToken``, activities; see :mod:`stepflow.engine.express_rules`) fail every
item with ``States.Runtime`` before anything runs.

Time: ``batch_budget`` (a :class:`stepflow.data.budget.Budget`, e.g. a ``ClockBudget`` whose
``decision_seconds`` is the Lambda's remaining time less a margin; its expression deadline
is not used) is checked before each item starts, each task runs and each transition-budget
continuation; once it runs out, the item in progress is parked and the rest come back
``NOT_RUN`` (never started: run them from their input). Every input comes
back exactly once, in input order. ``budgets`` gives each decision its evaluation budget,
as the stepper's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from stepflow.asl import StateMachine
from stepflow.data.budget import UNLIMITED, Budget, BudgetExceeded, DecisionDeferred
from stepflow.data.serialize import dumps, storable_problem, utf8_size
from stepflow.engine import (
    CancelTask,
    Complete,
    Continue,
    ContinueLater,
    Event,
    ExecutionState,
    NotifyParent,
    ParameterCheck,
    RunTask,
    Start,
    StartTimer,
    TaskFailed,
    TimerFired,
    decide,
)
from stepflow.engine.codec import decode_state, encode_state
from stepflow.engine.express_rules import EXPRESS_MAX_SECONDS, machine_refusals
from stepflow.errors import StatesErrorName
from stepflow.limits import DEFAULT_LIMITS, Limits
from stepflow.runtime.messages import task_body
from stepflow.runtime.outcome import TaskInvoker
from stepflow.runtime.task_runs import checked_result, with_effects

ItemStatus = Literal["SUCCEEDED", "FAILED", "TIMED_OUT", "PENDING", "NOT_RUN"]


@dataclass(frozen=True, slots=True)
class ItemResult:
    """What became of one item (or one ItemBatcher batch) of an EXPRESS batch.

    ``index`` is the input's. ``status``: ``SUCCEEDED`` (``output``), ``FAILED`` or
    ``TIMED_OUT`` (``error``, ``cause``), ``PENDING`` (started and parked: pass this
    result back to :func:`run_batch` at ``wake_at``, None: at once) or ``NOT_RUN``
    (never started: run it again from its input). ``start_date``/``stop_date`` are epoch
    seconds (None: not started / not stopped).
    """

    index: int
    status: ItemStatus
    output: Any = None
    error: str | None = None
    cause: str | None = None
    start_date: float | None = None
    stop_date: float | None = None
    resume: dict[str, Any] | None = None
    wake_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The result as a JSON object (to carry in a message)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ItemResult:
        """The result written by :meth:`to_json`."""
        values: dict[str, Any] = {f.name: data.get(f.name) for f in fields(cls)}
        return cls(**values)


BatchInput = tuple[int, Any] | ItemResult
"""An item to run: ``(index, input)`` to start it, or a ``PENDING`` result to continue it."""


def run_batch(
    definition: StateMachine,
    machine: str,
    inputs: Sequence[BatchInput],
    *,
    context: Mapping[str, Any],
    variables: Mapping[str, Any],
    invoker: TaskInvoker,
    clock: Callable[[], float],
    limits: Limits = DEFAULT_LIMITS,
    check_parameters: ParameterCheck | None = None,
    batch_budget: Budget = UNLIMITED,
    budgets: Callable[[], Budget] | None = None,
    parent_arn: str = "",
    seed: int = 0,
    redrive: int | None = None,
) -> list[ItemResult]:
    """Run ``inputs`` on item processor ``machine`` of ``definition``; one result per input.

    ``context`` is the context object the items see without ``Map`` (the spec's
    ``scope.context``: ``Execution`` and ``StateMachine``), ``variables`` the variables
    they read (read-only). ``invoker`` runs each task inline (the stepper's invoker),
    ``clock`` reads epoch seconds. ``limits`` and ``check_parameters`` are the stepper's.
    ``parent_arn`` names the map run (tasks see it as their execution for role sessions;
    default: ``context.Execution.Id``); ``seed`` keys each item's retry jitter.
    ``redrive`` is the map run's redrive generation (its head's redrive count, carried by
    the batch message): it keys each task's ``attempt_id``, so that a cell's effect journal
    and saga start afresh for a redriven run instead of replaying the failure recorded
    before the redrive (default: the context's ``Execution.RedriveCount``).
    Results come in input order, each input exactly once; see the module docstring for
    ``PENDING``/``NOT_RUN`` and ``batch_budget``.
    """
    runner = _Batch(
        definition,
        machine,
        context,
        dict(variables),
        invoker,
        clock,
        limits,
        check_parameters,
        batch_budget,
        budgets,
        parent_arn or str(context.get("Execution", {}).get("Id", "")),
        seed,
        redrive,
    )
    refused = [f"{message} at {where}" for where, message in _refusals(definition, machine)]
    results: list[ItemResult] = []
    for item in inputs:
        index = item.index if isinstance(item, ItemResult) else item[0]
        if refused:
            now = clock()
            results.append(
                ItemResult(index, "FAILED", None, StatesErrorName.RUNTIME.value,
                           f"Invalid item processor for EXPRESS: {refused[0]}", now, now)
            )  # fmt: skip
        elif runner.out_of_time:
            results.append(item if isinstance(item, ItemResult) else ItemResult(index, "NOT_RUN"))
        else:
            results.append(runner.run(item))
    return results


def _refusals(definition: StateMachine, machine: str) -> list[tuple[str, str]]:
    processor = definition.machines.get(machine)
    if processor is None:
        return [("/ItemProcessor", f"no item processor {machine!r} in the definition")]
    return list(machine_refusals(processor, "/ItemProcessor"))


@dataclass(slots=True)
class _Item:
    """One item in progress: engine state, tasks scheduled and not yet run, armed timers."""

    index: int
    state: ExecutionState
    started: float
    tasks: list[RunTask] = field(default_factory=list)
    timers: dict[str, float] = field(default_factory=dict)
    again: bool = False
    failure: tuple[str, str] | None = None


class _Batch:
    """The items of one batch, run one after the other on one clock and one budget."""

    def __init__(
        self,
        definition: StateMachine,
        machine: str,
        context: Mapping[str, Any],
        variables: dict[str, Any],
        invoker: TaskInvoker,
        clock: Callable[[], float],
        limits: Limits,
        check_parameters: ParameterCheck | None,
        batch_budget: Budget,
        budgets: Callable[[], Budget] | None,
        parent_arn: str,
        seed: int,
        redrive: int | None,
    ) -> None:
        self.definition, self.machine, self.context = definition, machine, context
        self.variables, self.invoker, self.clock = variables, invoker, clock
        self.limits, self.check_parameters = limits, check_parameters
        self.batch_budget, self.budgets = batch_budget, budgets
        self.parent_arn, self.seed, self.redrive = parent_arn, seed, redrive
        self.out_of_time = False
        execution = context.get("Execution", {})
        self.parent_input = execution.get("Input") if isinstance(execution, Mapping) else None

    # --- one item -------------------------------------------------------------------------

    def run(self, given: BatchInput) -> ItemResult:
        """Start or continue one item and run it until it ends or must be parked."""
        if isinstance(given, ItemResult):  # its next task or continuation checks the time
            item = self._resumed(given)
        elif not self._has_time():
            return ItemResult(given[0], "NOT_RUN")
        else:
            item = self._fresh(*given)
            if item.failure is None:
                self._apply(item, Start())
        return self._advance(item)

    def _fresh(self, index: int, value: Any) -> _Item:
        now = self.clock()
        state = self._new_state(index, value)
        item = _Item(index, state, now)
        problem = storable_problem(value)
        if problem is not None:
            item.failure = (StatesErrorName.RUNTIME.value, f"The item cannot be run: {problem}.")
            return item
        size = utf8_size(dumps(value))
        if size > self.limits.max_payload_bytes:
            item.failure = (
                StatesErrorName.DATA_LIMIT_EXCEEDED.value,
                f"The item's input is {size} bytes, more than the "
                f"{self.limits.max_payload_bytes} bytes of max_payload_bytes.",
            )
        return item

    def _new_state(self, index: int, value: Any) -> ExecutionState:
        execution = self.context.get("Execution", {})
        machine = self.context.get("StateMachine", {})
        material = f"{self.seed}:{index}".encode()
        return ExecutionState(
            execution_arn=str(execution.get("Id", self.parent_arn)),
            name=str(execution.get("Name", "")),
            state_machine_arn=str(machine.get("Id", "")),
            state_machine_name=str(machine.get("Name", "")),
            role_arn=str(execution.get("RoleArn", "")),
            start_time=str(execution.get("StartTime", "")),
            input=self.parent_input,
            root_input=value,
            redrive_count=int(execution.get("RedriveCount", 0) or 0),
            seed=int.from_bytes(hashlib.sha256(material).digest()[:8], "big"),
            # A parent keeps the definition's execution timeout off the item, and makes the
            # engine read the processor's machine and the Map's variables.
            parent={"arn": self.parent_arn, "child_id": f"express/{index}",
                    "root_arn": self.parent_arn},
            machine=self.machine,
            outer_variables=self.variables,
        )  # fmt: skip

    def _resumed(self, parked: ItemResult) -> _Item:
        data = parked.resume or {}
        state = decode_state(dict(data["state"]))
        state.input = self.parent_input  # left out of the parked copy
        state.outer_variables = self.variables
        return _Item(
            parked.index,
            state,
            float(parked.start_date if parked.start_date is not None else self.clock()),
            [RunTask(**body) for body in data.get("tasks", [])],
            {str(k): float(v) for k, v in dict(data.get("timers", {})).items()},
            bool(data.get("again", False)),
        )

    def _advance(self, item: _Item) -> ItemResult:
        """Feed the item its due events until it ends or must wait (then park it)."""
        while item.failure is None and item.state.status == "RUNNING":
            now = self.clock()
            if now - item.started >= EXPRESS_MAX_SECONDS:
                return self._ended(item, "TIMED_OUT", "States.Timeout", _TIMEOUT_CAUSE)
            due = _due(item, now)
            if due is not None:
                self._apply(item, TimerFired(due))
            elif item.again or item.tasks:
                if not self._has_time():
                    return self._park(item, None)
                if item.again:
                    item.again = False
                    self._apply(item, Continue())
                else:
                    self._run_task(item, item.tasks.pop(0))
            elif item.timers:
                wake = min(min(item.timers.values()), item.started + EXPRESS_MAX_SECONDS)
                return self._park(item, wake)
            else:  # RUNNING with nothing to wait for: only an unsupported command leaves this
                item.failure = (StatesErrorName.RUNTIME.value, _STUCK_CAUSE)
        if item.failure is not None:
            return self._ended(item, "FAILED", *item.failure)
        s = item.state
        if s.status == "SUCCEEDED":
            return self._ended(item, "SUCCEEDED", None, None, s.output)
        status: ItemStatus = "TIMED_OUT" if s.status == "TIMED_OUT" else "FAILED"
        return self._ended(item, status, s.error, s.cause)

    def _run_task(self, item: _Item, command: RunTask) -> None:
        """Run one task inline; timers that fell due while it ran are delivered first."""
        body = {**task_body(command), "execution_arn": self.parent_arn}
        # Items share the run's ARN and number their tasks alike: a cell's journal keys
        # tell the items (and the redrives of the run) apart by this attempt id. The run's
        # own generation, not the context's count (written once when the run was created).
        redrive = item.state.redrive_count if self.redrive is None else self.redrive
        body["attempt_id"] = f"express/{redrive}/{item.index}/{command.task_id}"
        event: Event
        try:
            outcome = self.invoker(body)
        except Exception as exc:  # isolated: this item's task failed, the batch goes on
            event = TaskFailed(
                command.task_id,
                StatesErrorName.TASK_FAILED.value,
                f"The task could not be run: {type(exc).__name__}: {exc}"[:32_768],
            )
        else:
            if outcome.submitted:  # a job left running: nothing in EXPRESS may wait for it
                event = TaskFailed(command.task_id, StatesErrorName.RUNTIME.value, _SUBMITTED)
            elif outcome.ok:
                event = checked_result(command.task_id, outcome.output, self.limits)
            else:
                event = TaskFailed(command.task_id, outcome.error, outcome.cause)
            event = with_effects(event, outcome)
        now = self.clock()
        while (due := _due(item, now)) is not None and item.state.status == "RUNNING":
            self._apply(item, TimerFired(due))  # e.g. its TimeoutSeconds passed meanwhile
        if item.state.status == "RUNNING":
            self._apply(item, event)

    def _apply(self, item: _Item, event: Event) -> None:
        """Decide ``event`` on the item's state (in place) and take in its commands."""
        budget = self.budgets() if self.budgets is not None else UNLIMITED
        try:
            decision = decide(
                self.definition,
                item.state,
                event,
                self.clock(),
                consume=True,
                time_budget=budget,
                limits=self.limits,
                check_parameters=self.check_parameters,
            )
        except DecisionDeferred:  # the state may be half-changed: the item cannot go on
            item.failure = (StatesErrorName.RUNTIME.value, "The decision was deferred.")
            return
        item.state = decision.state
        for command in decision.commands:
            if isinstance(command, RunTask):
                item.tasks.append(command)
            elif isinstance(command, StartTimer):
                item.timers[command.timer_id] = command.fire_at
            elif isinstance(command, CancelTask):
                item.tasks = [t for t in item.tasks if t.task_id != command.task_id]
            elif isinstance(command, ContinueLater):
                item.again = True
            elif not isinstance(command, Complete | NotifyParent):
                name = type(command).__name__
                item.failure = (StatesErrorName.RUNTIME.value, _unsupported(name))
        live = item.state.timers  # the engine forgets timers that no longer matter
        item.timers = {k: v for k, v in item.timers.items() if k in live}

    # --- endings --------------------------------------------------------------------------

    def _ended(
        self,
        item: _Item,
        status: ItemStatus,
        error: str | None,
        cause: str | None,
        output: Any = None,
    ) -> ItemResult:
        return ItemResult(item.index, status, output, error, cause, item.started, self.clock())

    def _park(self, item: _Item, wake_at: float | None) -> ItemResult:
        state = encode_state(item.state)
        state["input"] = None  # the parent's input: the next batch has it in its context
        state["outer_variables"] = {}
        resume = {
            "state": state,
            "tasks": [task_body(task) for task in item.tasks],
            "timers": dict(item.timers),
            "again": item.again,
        }
        return ItemResult(item.index, "PENDING", start_date=item.started, resume=resume,
                          wake_at=wake_at)  # fmt: skip

    def _has_time(self) -> bool:
        if not self.out_of_time:
            try:  # only the budget's overall (decision) deadline counts for a batch
                self.batch_budget.start_expression()
                self.batch_budget.check()
            except BudgetExceeded:
                self.out_of_time = True
        return not self.out_of_time


def _due(item: _Item, now: float) -> str | None:
    """The id of the earliest timer of ``item`` due at ``now``, if any."""
    if not item.timers:
        return None
    timer_id, fire_at = min(item.timers.items(), key=lambda kv: (kv[1], kv[0]))
    return timer_id if fire_at <= now else None


def _unsupported(command: str) -> str:
    return f"An EXPRESS item processor cannot run what needs a durable execution ({command})."


_TIMEOUT_CAUSE = f"The EXPRESS execution ran longer than {EXPRESS_MAX_SECONDS} seconds."
_STUCK_CAUSE = "The EXPRESS execution has nothing left to run and did not end."
_SUBMITTED = "The task started a job that an EXPRESS execution cannot wait for."
