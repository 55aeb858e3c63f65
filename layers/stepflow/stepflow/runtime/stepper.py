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
:mod:`stepflow.runtime.outbox` (a decision's messages and child executions),
:mod:`stepflow.runtime.task_runs` (running and claiming tasks under leases) and
:mod:`stepflow.runtime.repair` (sending an outbox, repair messages).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from stepflow.asl import StateMachine
from stepflow.data.budget import UNLIMITED, Budget
from stepflow.engine import (
    Command,
    Event,
    ExecutionState,
    Fail,
    ParameterCheck,
    Redrive,
    Start,
    Stop,
    UnreportedIterations,
    decide,
)
from stepflow.engine.codec import decode_state
from stepflow.limits import DEFAULT_LIMITS, Limits
from stepflow.runtime.child_start import first_commit
from stepflow.runtime.leases import LeaseConflictError, LeaseFence
from stepflow.runtime.map_inline import unreported as inline_unreported
from stepflow.runtime.map_io import ItemSource, ResultSink
from stepflow.runtime.map_pages import PageCache
from stepflow.runtime.map_run_access import MapRunStartCheck, refused_starts
from stepflow.runtime.map_run_state import is_run_key
from stepflow.runtime.map_runs import MapRuns
from stepflow.runtime.messages import Message, decode_event
from stepflow.runtime.nested import may_orphan, orphan_stops
from stepflow.runtime.outbox import MAX_DELAY_SECONDS as MAX_DELAY_SECONDS
from stepflow.runtime.outbox import build_outbox, child_arn, create_child
from stepflow.runtime.outbox import delay as _delay
from stepflow.runtime.outbox import store_state as _store_state
from stepflow.runtime.outcome import TaskInvoker
from stepflow.runtime.polled_jobs import orphan_job_cancels
from stepflow.runtime.ports import (
    ConflictError,
    CoordinationLog,
    ExecutionAlreadyExistsError,
    ExecutionRecord,
    MessageBus,
    UnstorableDataError,
)
from stepflow.runtime.repair import OutboxSender
from stepflow.runtime.starts import (
    ExecutionInputMismatchError,
    NewExecution,
    first_decision,
    first_record,
    first_state,
    unstorable,
)
from stepflow.runtime.task_queue import TaskRouter
from stepflow.runtime.task_runs import TaskLeaseHeldError as TaskLeaseHeldError
from stepflow.runtime.task_runs import TaskRuns

DEFAULT_CHILD_LIMIT = 40
"""An inline Map with more items than this runs them in a map run (engine.map_inline)."""


TaskGuard = Callable[[ExecutionRecord | None], LeaseFence | None]
"""Checks a record before a worker's report is applied: raises to refuse it (nothing is
written), or returns the lease fence the commit is conditioned on (None: none)."""

_LEGACY_LEASE_ATTRIBUTES = ("lease_owner", "lease_until", "task_leases")
"""Head attributes of the lease mechanisms that :mod:`stepflow.runtime.leases` replaced."""


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
        limits: Limits = DEFAULT_LIMITS,
        budgets: Callable[[], Budget] | None = None,
        start_budgets: Callable[[], Budget] | None = None,
        check_parameters: ParameterCheck | None = None,
        item_source: ItemSource | None = None,
        result_sink: ResultSink | None = None,
        map_run_check: MapRunStartCheck | None = None,
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
        stepper), so an outbox left unsent by a crash right after the commit is re-sent."""
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
            self._flush(existing, inline=False)
            return existing
        self._flush(record, inline=False)
        return record

    def _create(self, record: ExecutionRecord, events: list[dict[str, Any]]) -> ExecutionRecord:
        """Store a new execution's record and first events (a repair message first)."""
        if record.outbox:
            self._send_repair(record.execution_arn)
        self.log.create(record, events)
        return record

    def handle(self, message: Message) -> None:
        """Process one delivery. Raises (so the message is redelivered) only on failure."""
        failures = self.handle_batch([message])
        if failures:
            raise failures[0][1]

    def handle_batch(
        self, messages: Sequence[Message], has_time: Callable[[], bool] | None = None
    ) -> list[tuple[Message, Exception]]:
        """Process a batch of deliveries; return those that failed (to be redelivered).

        The events of one execution are decided one after the other on the same
        loaded record and committed together: a Map's ten task results arriving
        in one batch cost one commit, not ten. ``has_time`` is asked before each
        message or execution is started: once it answers no (the Lambda is about
        to time out), the rest are sent again as new messages, so a slow
        execution in the batch costs the others a redelivery, never a receive
        count towards the dead-letter queue.
        """
        now = self.clock()
        failures: list[tuple[Message, Exception]] = []
        groups: dict[str, list[tuple[Message, Event]]] = {}
        runs: dict[str, list[Message]] = {}  # map runs' deliveries, by run (map_runs.py)
        later: list[Message] = []
        run_heads: dict[str, ExecutionRecord | None] = {}  # read once per batch (child_event)
        for message in messages:
            if has_time is not None and not has_time():
                later.append(message)
                continue
            try:
                if message.not_before > now:
                    self.bus.send(message, _delay(message.not_before - now))
                elif is_run_key(message.execution_arn):
                    runs.setdefault(message.execution_arn, []).append(message)
                elif message.kind == "child" and "map_run" in message.body:
                    started = self._start_child(message, run_heads)
                    if started is not None:  # None: started here, or it never starts
                        groups.setdefault(message.execution_arn, []).append((message, started))
                elif message.kind == "task":
                    self._tasks().run_task(message)
                    run_heads.clear()  # time passed: a run read before may have ended
                elif message.kind == "repair":
                    self._apply(message.execution_arn, [])
                elif message.kind == "child":
                    create_child(self.log, message, self.clock())
                    groups.setdefault(message.execution_arn, []).append((message, Start()))
                else:
                    event = decode_event(message.body)
                    groups.setdefault(message.execution_arn, []).append((message, event))
            except Exception as exc:  # reported per message; the batch goes on
                failures.append((message, exc))
        for key, deliveries in runs.items():
            try:
                kept, fails = list(deliveries), list[Message]()
                if self.map_run_check is not None:  # may the role start the run's children?
                    kept, fails = refused_starts(self.map_run_check, self.log, key, deliveries)
                for fail in fails:
                    self.bus.send(fail)
                self.map_runs().handle(key, kept)
            except Exception as exc:
                failures.extend((message, exc) for message in deliveries)
        for arn, group in groups.items():
            if has_time is not None and not has_time():
                later.extend(message for message, _ in group)
                continue
            try:
                self._apply(arn, [event for _, event in group])
            except Exception as exc:
                failures.extend((message, exc) for message, _ in group)
        for message in later:
            try:
                self.bus.send(message)
            except Exception as exc:  # not re-sent: redelivered after its visibility timeout
                failures.append((message, exc))
        return failures

    def redrive_execution(
        self, execution_arn: str, *, attributes: Mapping[str, Any] | None = None
    ) -> ExecutionRecord | None:
        """RedriveExecution: run a FAILED, TIMED_OUT or ABORTED execution again.

        Returns the record after the redrive (unchanged if it could not be redriven).
        ``attributes`` go into the head with the redrive (e.g. who asked for it).
        """
        self._apply(execution_arn, [Redrive()], attributes=attributes)
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
        self._apply(execution_arn, [Stop(error, cause)], attributes=attributes)
        return self.log.get(execution_arn)

    def report_task(self, execution_arn: str, event: Event, guard: TaskGuard) -> None:
        """Apply a worker's report on a deferred task (started, heartbeat, result).

        ``guard`` sees the latest record before each attempt to commit: it
        refuses the report by raising (nothing is written) or returns head
        attributes to commit with it. The engine ignores a report on an attempt
        that is no longer open, so a guard must refuse those.
        """
        self._apply(execution_arn, [event], guard)

    def _start_child(
        self, message: Message, run_heads: dict[str, ExecutionRecord | None]
    ) -> Start | Redrive | None:
        """Store a map run's new child with its first decision, run its inline tasks.

        Returns the event to apply instead (the child exists already, it is redriven,
        or its first decision made data no log can hold), or None (done, or its run
        ended first: it never starts). See :mod:`stepflow.runtime.child_start`.
        """
        runs = self.map_runs()
        prepared = runs.prepare_child(message, run_heads)
        if prepared is None:
            return None
        record, event = prepared
        if isinstance(event, Start):
            root = str(record.state["parent"]["root_arn"])  # an inline Map's: its parent
            new, events = first_commit(
                record,
                record.input if root == record.execution_arn else self._root_input(root),
                self.definitions(record.state_machine_arn),
                self.clock(),
                budget=self._budget(),
                limits=self.limits,
                check_parameters=self.check_parameters,
            )
            try:
                if new.outbox:
                    self._send_repair(new.execution_arn)
                self.log.create(new, events)
            except (ExecutionAlreadyExistsError, UnstorableDataError):
                pass  # started already, or to fail on the two-write path (see _commit)
            else:
                inline = self._flush(new)
                self._apply(new.execution_arn, [], started=inline)
                if inline:  # its tasks ran: the run may have ended meanwhile, read it again
                    run_heads.pop(str(message.body["map_run"]), None)
                return None
        with contextlib.suppress(ExecutionAlreadyExistsError):
            self.log.create(record, [])
        return event

    def _apply(
        self,
        execution_arn: str,
        events: list[Event],
        guard: TaskGuard | None = None,
        *,
        attributes: Mapping[str, Any] | None = None,
        started: list[Message] | None = None,
    ) -> None:
        """Commit ``events``; then run the inline tasks they scheduled and commit their results.

        Running a task right here saves two queue hops: the commit of its result
        replaces the outbox that held it. The inline tasks of one commit are
        claimed first, together, through one lease record (its task id is
        ``outbox#<seq>``, see :func:`stepflow.runtime.leases.claim`): one
        conditional write for a Map's ten tasks. Tasks taken over from an older
        outbox (a crashed or stale stepper's) are claimed one by one as well,
        so a task that ran meanwhile from the queue is not run again.
        ``started``: the inline tasks of a commit made already (a new child's first).
        """
        handled: set[str] = set()
        tasks: list[tuple[Message, bool]] = []
        for _ in range(self.max_inline_rounds):
            if started is not None:
                tasks, started = [(m, False) for m in started], None
            else:
                tasks = self._commit(execution_arn, events, handled, guard, attributes)
            guard, attributes = None, None
            if not tasks:
                return
            handled.update(message.id for message, _ in tasks)
            runs = self._tasks()
            held, claimed = runs.claim_inline(tasks)
            try:
                results = [runs.run_inline(m, takeover) for m, takeover in held]
            except Exception:
                runs.release(claimed)  # a redelivery may take them over at once
                raise
            events = [decode_event(result) for result in results if result is not None]
            if not events:
                return
        for message, _ in tasks:  # a long chain of quick tasks: hand the rest to the queue
            self.bus.send(message)

    def _commit(
        self,
        execution_arn: str,
        events: list[Event],
        handled: set[str],
        guard: TaskGuard | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> list[tuple[Message, bool]]:
        """Decide ``events`` on the latest record and commit them as one write.

        ``attributes`` are added to the head's if the events change anything.

        Returns the task messages to run inline, each with whether it is taken
        over from an earlier commit's outbox (those come first).
        ``handled`` are tasks this stepper already ran, not to be repaired again.
        On a conflict, reload and decide again: the engine ignores any event the
        winning writer already applied.
        """
        repair_sent = False
        for _ in range(self.max_conflicts):
            record = self.log.get(execution_arn)
            fence = guard(record) if guard is not None else None
            if record is None:
                return []
            pending = tuple(m for m in record.outbox if m.id not in handled)
            # Tasks this stepper ran but whose results are not committed yet stay in the
            # outbox: clearing it here would lose them if the commit below fails.
            partial = len(pending) < len(record.outbox)
            repaired = (
                [(m, True) for m in self._flush(replace(record, outbox=pending), clear=not partial)]
                if pending
                else []
            )
            ended = record.status != "RUNNING" and not any(isinstance(e, Redrive) for e in events)
            if may_orphan(events):  # a .sync child or job whose attempt closed first: stop it
                loaded = self._load_state(record)
                open_tasks = None if ended else loaded.tasks
                orphans = orphan_stops(events, open_tasks)
                orphans += orphan_job_cancels(execution_arn, events, open_tasks, loaded)
                for stop in orphans:
                    self.bus.send(stop)
            if ended:
                return repaired
            now = self.clock()
            definition = self.definitions(record.state_machine_arn)
            before = self._load_state(record)
            state, history, commands = self._decide(definition, before, events, now)
            unreported = inline_unreported(self.log, execution_arn, commands)
            if unreported:  # it abandons an inline Map's run: decide again, knowing its events
                state, history, commands = self._decide(definition, before, events, now, unreported)
            if not history and not commands and state == before:
                if fence is None or fence.new is None:
                    return repaired  # duplicates or stale messages only
                try:  # only the lease changes (a heartbeat, a release): no commit needed
                    self.log.put_lease(fence.new)
                except LeaseConflictError:
                    continue
                return repaired
            seq = record.seq + 1
            outbox = build_outbox(
                record.execution_arn, seq, commands, state, record.state_machine_arn, now
            ) + self._in_flight(record, state, handled)
            kept = {k: v for k, v in record.attributes.items() if k not in _LEGACY_LEASE_ATTRIBUTES}
            kept.update(attributes or {})
            new = replace(
                record,
                seq=seq,
                status=state.status,
                state=_store_state(state),
                outbox=outbox,
                stop_date=None if state.status == "RUNNING" else now,
                attributes=kept,
            )
            if outbox and not repair_sent:  # only a commit with messages to send can lose them
                self._send_repair(execution_arn)
                repair_sent = True
            try:
                self.log.commit(new, record.seq, history, fence=fence)
            except ConflictError:
                continue
            except UnstorableDataError as exc:
                if any(isinstance(e, Fail) for e in events):
                    raise
                # Poison data (e.g. a lone surrogate from States.StringToJson): retrying
                # cannot help, so the execution fails instead, on the record it was at.
                events = [unstorable(exc)]
                continue
            return repaired + [(m, False) for m in self._flush(new)]
        raise ConflictError(execution_arn, -1)

    def _decide(
        self,
        definition: StateMachine,
        before: ExecutionState,
        events: list[Event],
        now: float,
        unreported: Mapping[str, UnreportedIterations] | None = None,
    ) -> tuple[ExecutionState, list[dict[str, Any]], list[Command]]:
        """Decide ``events`` in turn from ``before`` (left unchanged): state, history, commands."""
        state = before
        history: list[dict[str, Any]] = []
        commands: list[Command] = []
        for event in events:
            # The first decision copies the loaded state (kept as ``before``);
            # the following ones may change their predecessor's in place.
            decision = decide(
                definition,
                state,
                event,
                now,
                consume=state is not before,
                time_budget=self._budget(),
                limits=self.limits,
                check_parameters=self.check_parameters,
                unreported=unreported,
            )
            state = decision.state
            history.extend(decision.events)
            commands.extend(decision.commands)
        return state, history, commands

    def _budget(self, *, start: bool = False) -> Budget:
        """A fresh time budget for one decision."""
        factory = (self.start_budgets or self.budgets) if start else self.budgets
        return UNLIMITED if factory is None else factory()

    def _in_flight(
        self, record: ExecutionRecord, state: ExecutionState, handled: set[str]
    ) -> tuple[Message, ...]:
        """Inline tasks of the record's outbox that another stepper runs (or ran and died).

        They stay in the new outbox while their attempt is open: replacing the outbox
        would otherwise forget a task whose runner crashes before committing its result.
        """
        return tuple(
            m
            for m in record.outbox
            if m.kind == "task"
            and m.id not in handled
            and str(m.body.get("task_id")) in state.tasks
            and (self.router is None or not self.router.deferred(m))
        )

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
        self, record: ExecutionRecord, *, inline: bool | None = None, clear: bool = True
    ) -> list[Message]:
        """Send the outbox; return its task messages instead when tasks run inline."""
        return self._sender().flush(record, inline=inline, clear=clear)

    def _send_repair(self, execution_arn: str) -> None:
        """Before a commit: a delayed message whose delivery re-sends a still pending outbox."""
        self._sender().send_repair(execution_arn)

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
