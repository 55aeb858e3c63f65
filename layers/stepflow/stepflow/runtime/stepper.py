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
"""

from __future__ import annotations

import contextlib
import math
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from stepflow.asl import StateMachine
from stepflow.engine import (
    CancelChild,
    Command,
    ContinueLater,
    Event,
    ExecutionState,
    NotifyParent,
    Redrive,
    RunTask,
    Start,
    StartChild,
    StartTimer,
    Stop,
    TaskFailed,
    TaskStarted,
    TaskSucceeded,
    decide,
    new_child_execution,
    new_execution,
)
from stepflow.engine.codec import decode_state, encode_state
from stepflow.engine.resources import describe
from stepflow.runtime.messages import Message, decode_event, encode_event, task_body
from stepflow.runtime.outcome import TaskInvoker
from stepflow.runtime.ports import (
    ConflictError,
    CoordinationLog,
    ExecutionAlreadyExistsError,
    ExecutionRecord,
    MessageBus,
)
from stepflow.runtime.task_queue import TaskRouter

MAX_DELAY_SECONDS = 900
"""The longest delay a queue gives a message (SQS); longer waits re-arm themselves."""

DEFAULT_CHILD_LIMIT = 40
"""A Map with more items than this runs them as child executions (see engine.children)."""


TaskGuard = Callable[[ExecutionRecord | None], dict[str, Any] | None]
"""Checks a record before a worker's report is applied: raises to refuse it (nothing is
written), or returns head attributes to store with the commit (None: none)."""

TASK_LEASES = "task_leases"
"""Head attribute: the deliveries of open deferred tasks (task id -> lease), kept by commits."""


class ExecutionInputMismatchError(Exception):
    """StartExecution with an existing name but a different input or state machine."""


class TaskLeaseHeldError(Exception):
    """Another worker is running this task attempt; deliver the message again later."""


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
        self._root_inputs: dict[str, Any] = {}

    def start_execution(
        self, *, state_machine_arn: str, name: str, input: Any, seed: int
    ) -> ExecutionRecord:
        """Create an execution and run its first decision; idempotent by name.

        The same name with the same input returns the existing execution; a
        different input raises :class:`ExecutionInputMismatchError`.
        """
        definition = self.definitions(state_machine_arn)
        now = self.clock()
        # arn:aws:states:<region>:<account>:stateMachine:<name>[:<version, alias or revision>]
        parts = state_machine_arn.split(":")
        where = {"region": parts[3], "account": parts[4]} if len(parts) >= 7 else {}
        sm_name = parts[6] if len(parts) >= 7 else parts[-1]
        state = new_execution(
            name=name,
            input=input,
            now=now,
            state_machine_name=sm_name,
            **where,
            seed=seed,
            child_limit=self.child_limit,
            token_key=secrets.token_hex(16),
        )
        decision = decide(definition, state, Start(), now)
        arn = state.execution_arn
        record = ExecutionRecord(
            execution_arn=arn,
            state_machine_arn=state_machine_arn,
            name=name,
            input=input,
            status=decision.state.status,
            seq=1,
            state=encode_state(decision.state),
            outbox=self._outbox(arn, 1, decision.commands, decision.state, state_machine_arn),
            start_date=now,
            stop_date=None if decision.state.status == "RUNNING" else now,
        )
        self._send_repair(arn)
        try:
            self.log.create(record, decision.events)
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

    def handle(self, message: Message) -> None:
        """Process one delivery. Raises (so the message is redelivered) only on failure."""
        failures = self.handle_batch([message])
        if failures:
            raise failures[0][1]

    def handle_batch(self, messages: Sequence[Message]) -> list[tuple[Message, Exception]]:
        """Process a batch of deliveries; return those that failed (to be redelivered).

        The events of one execution are decided one after the other on the same
        loaded record and committed together: a Map's ten task results arriving
        in one batch cost one commit, not ten.
        """
        now = self.clock()
        failures: list[tuple[Message, Exception]] = []
        groups: dict[str, list[tuple[Message, Event]]] = {}
        for message in messages:
            try:
                if message.not_before > now:
                    self.bus.send(message, _delay(message.not_before - now))
                elif message.kind == "task":
                    self._run_task(message)
                elif message.kind == "repair":
                    self._apply(message.execution_arn, [])
                elif message.kind == "child":
                    self._create_child(message)
                    groups.setdefault(message.execution_arn, []).append((message, Start()))
                else:
                    event = decode_event(message.body)
                    groups.setdefault(message.execution_arn, []).append((message, event))
            except Exception as exc:  # reported per message; the batch goes on
                failures.append((message, exc))
        for arn, group in groups.items():
            try:
                self._apply(arn, [event for _, event in group])
            except Exception as exc:
                failures.extend((message, exc) for message, _ in group)
        return failures

    def redrive_execution(self, execution_arn: str) -> ExecutionRecord | None:
        """RedriveExecution: run a FAILED, TIMED_OUT or ABORTED execution again.

        Returns the record after the redrive (unchanged if it could not be redriven).
        """
        self._apply(execution_arn, [Redrive()])
        return self.log.get(execution_arn)

    def stop_execution(
        self, execution_arn: str, *, error: str | None = None, cause: str | None = None
    ) -> ExecutionRecord | None:
        """StopExecution: abort a running execution (no effect on a finished one)."""
        self._apply(execution_arn, [Stop(error, cause)])
        return self.log.get(execution_arn)

    def report_task(self, execution_arn: str, event: Event, guard: TaskGuard) -> None:
        """Apply a worker's report on a deferred task (started, heartbeat, result).

        ``guard`` sees the latest record before each attempt to commit: it
        refuses the report by raising (nothing is written) or returns head
        attributes to commit with it. The engine ignores a report on an attempt
        that is no longer open, so a guard must refuse those.
        """
        self._apply(execution_arn, [event], guard)

    def _apply(
        self, execution_arn: str, events: list[Event], guard: TaskGuard | None = None
    ) -> None:
        """Commit ``events``; then run the inline tasks they scheduled and commit their results.

        Running a task right here saves two queue hops and the lease writes: the
        commit that schedules a task also records this stepper's lease on it
        (in the head it writes anyway), and the commit of its result replaces
        the outbox that held it. A task found in the outbox of a crashed or
        stale stepper is taken over through :meth:`CoordinationLog.claim_task`.
        """
        handled: set[str] = set()
        tasks: list[tuple[Message, bool]] = []
        if events:
            self._send_repair(execution_arn)
        for _ in range(self.max_inline_rounds):
            tasks = self._commit(execution_arn, events, handled, guard)
            guard = None
            if not tasks:
                return
            handled.update(message.id for message, _ in tasks)
            results = (self._run_inline(message, claim) for message, claim in tasks)
            events = [event for event in results if event is not None]
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
    ) -> list[tuple[Message, bool]]:
        """Decide ``events`` on the latest record and commit them as one write.

        Returns the task messages to run inline, each with whether it must be
        claimed first (a takeover) or is leased to us by this very commit.
        ``handled`` are tasks this stepper already ran, not to be repaired again.
        On a conflict, reload and decide again: the engine ignores any event the
        winning writer already applied.
        """
        for _ in range(self.max_conflicts):
            record = self.log.get(execution_arn)
            extra = guard(record) if guard is not None else None
            if record is None:
                return []
            pending = tuple(m for m in record.outbox if m.id not in handled)
            repaired = [(m, True) for m in self._repair(replace(record, outbox=pending))]
            if record.status != "RUNNING" and not any(isinstance(e, Redrive) for e in events):
                return repaired
            now = self.clock()
            definition = self.definitions(record.state_machine_arn)
            before = state = self._load_state(record)
            history: list[dict[str, Any]] = []
            commands: list[Command] = []
            for event in events:
                # The first decision copies the loaded state (kept as ``before``);
                # the following ones may change their predecessor's in place.
                decision = decide(definition, state, event, now, consume=state is not before)
                state = decision.state
                history.extend(decision.events)
                commands.extend(decision.commands)
            if not history and not commands and state == before and extra is None:
                return repaired  # duplicates or stale messages only
            seq = record.seq + 1
            outbox = self._outbox(
                record.execution_arn, seq, commands, state, record.state_machine_arn
            )
            lease = {"lease_owner": self.owner, "lease_until": now + self.task_lease_seconds}
            kept = _open_leases({**record.attributes, **(extra or {})}, state)
            new = replace(
                record,
                seq=seq,
                status=state.status,
                state=_store_state(state),
                outbox=outbox,
                stop_date=None if state.status == "RUNNING" else now,
                attributes={**kept, **lease} if self._has_inline(outbox) else kept,
            )
            try:
                self.log.commit(new, record.seq, history)
            except ConflictError:
                continue
            return repaired + [(m, False) for m in self._flush(new)]
        raise ConflictError(execution_arn, -1)

    def _has_inline(self, outbox: tuple[Message, ...]) -> bool:
        return self.inline_tasks and any(m.kind == "task" and not self._deferred(m) for m in outbox)

    def _deferred(self, message: Message) -> bool:
        return self.router is not None and self.router.deferred(message)

    def _repair(self, record: ExecutionRecord) -> list[Message]:
        """Re-send the outbox of a sender that crashed after committing.

        Inline tasks still leased to another live stepper are left to it: they
        are queued to be looked at again when that lease runs out.
        """
        if not record.outbox:
            return []
        now = self.clock()
        owner = record.attributes.get("lease_owner")
        until = float(record.attributes.get("lease_until", 0.0))
        if self._has_inline(record.outbox) and owner not in (None, self.owner) and until > now:
            for message in record.outbox:
                due = until if message.kind == "task" else message.not_before
                self.bus.send(message, _delay(due - now))
            return []
        return self._flush(record)

    def _run_inline(self, message: Message, claim: bool) -> Event | None:
        """Run a task message here; None if another worker holds its lease."""
        if not claim:
            return decode_event(self._invoke(message))
        try:
            return decode_event(self._task_result(message))
        except TaskLeaseHeldError:
            self.bus.send(message)  # its holder reports; this copy re-checks later
            return None

    def _outbox(
        self,
        arn: str,
        seq: int,
        commands: list[Command],
        state: ExecutionState,
        machine_arn: str,
    ) -> tuple[Message, ...]:
        """The messages of ``commands``; children run ``machine_arn``, their parent's revision."""
        messages = []
        for i, command in enumerate(commands):
            message_id = f"{arn}#{seq}#{i}"
            if isinstance(command, StartChild):
                child = self._child_message(arn, message_id, command, state, machine_arn)
                messages.append(child)
            elif isinstance(command, CancelChild):
                messages.append(
                    Message(child_arn(arn, command.child_id), message_id, "event", {"type": "Stop"})
                )
            elif isinstance(command, NotifyParent):
                done_id = f"{arn}#finished"
                messages.append(
                    Message(command.parent_arn, done_id, "event", encode_event(command.event))
                )
            elif isinstance(command, RunTask):
                messages.append(Message(arn, message_id, "task", task_body(command)))
            elif isinstance(command, StartTimer):
                body = {"type": "TimerFired", "timer_id": command.timer_id}
                messages.append(Message(arn, message_id, "event", body, command.fire_at))
            elif isinstance(command, ContinueLater):
                messages.append(Message(arn, message_id, "event", {"type": "Continue"}))
        return tuple(messages)

    def _child_message(
        self,
        arn: str,
        message_id: str,
        command: StartChild,
        state: ExecutionState,
        machine_arn: str,
    ) -> Message:
        """The message that creates a child execution: its initial state, ready to start."""
        child = new_child_execution(state, arn, command)
        body = {
            "state": _store_state(child),
            "input": command.input,
            # The exact revision or version the parent runs (its definition-cache key);
            # the unqualified ARN of the engine state names no stored definition.
            "state_machine_arn": machine_arn,
        }
        return Message(child_arn(arn, command.child_id), message_id, "child", body)

    def _create_child(self, message: Message) -> None:
        """Create the child execution of a ``child`` message (once; a duplicate is a no-op)."""
        body = message.body
        record = ExecutionRecord(
            execution_arn=message.execution_arn,
            state_machine_arn=str(body["state_machine_arn"]),
            name=message.execution_arn.rsplit("#", 1)[-1],
            input=body["input"],
            status="RUNNING",
            seq=0,
            state=dict(body["state"]),
            start_date=self.clock(),
        )
        # A redelivered message finds it created; the Start that follows is then a no-op.
        with contextlib.suppress(ExecutionAlreadyExistsError):
            self.log.create(record, [])

    def _load_state(self, record: ExecutionRecord) -> ExecutionState:
        """The engine state of ``record``; a child's ``$$.Execution.Input`` is its root's."""
        state = decode_state(record.state)
        if state.parent is not None:
            root = str(state.parent["root_arn"])
            if root not in self._root_inputs:
                if len(self._root_inputs) >= 256:
                    self._root_inputs.clear()
                root_record = self.log.get(root)
                self._root_inputs[root] = None if root_record is None else root_record.input
            state.input = self._root_inputs[root]
        return state

    def _flush(self, record: ExecutionRecord, *, inline: bool | None = None) -> list[Message]:
        """Send the outbox; return its task messages instead when tasks run inline.

        The outbox is cleared only when everything in it was sent: inline task
        messages stay until the commit of their results replaces the outbox.
        """
        inline = self.inline_tasks if inline is None else inline
        now = self.clock()
        kept = []
        for message in record.outbox:
            if message.kind == "task" and self.router is not None and self._deferred(message):
                self.router.dispatch(message)
            elif message.kind == "task" and inline:
                kept.append(message)
            elif message.kind == "task" and self.tasks_bus is not None:
                self.tasks_bus.send(message)
            else:
                self.bus.send(message, _delay(message.not_before - now))
        if not kept:
            self.log.clear_outbox(record.execution_arn, record.seq)
        return kept

    def _send_repair(self, execution_arn: str) -> None:
        """Before a commit: a delayed message whose delivery re-sends a still pending outbox."""
        if self.repair_delay > 0:
            repair = Message(
                execution_arn, f"{execution_arn}#repair#{uuid.uuid4().hex}", "repair", {}
            )
            self.bus.send(repair, _delay(self.repair_delay))

    def _run_task(self, message: Message) -> None:
        """A queued task message: run it once and send its result as an event."""
        if self.router is not None and self._deferred(message):
            self.router.dispatch(message)
            return
        result = self._task_result(message)
        self.bus.send(Message(message.execution_arn, f"{message.id}#result", "event", result))

    def _task_result(self, message: Message) -> dict[str, Any]:
        """Run an inline task attempt once: lease it, run it, record its result event.

        A duplicate of a finished attempt gets the recorded result; one whose
        lease is live raises :class:`TaskLeaseHeldError` (retry later). Only a
        crash between running the task and recording its result re-runs it.
        """
        body = message.body
        arn, task_id = message.execution_arn, str(body["task_id"])
        claim = self.log.claim_task(arn, task_id, self.owner, self.clock(), self.task_lease_seconds)
        if claim.status == "busy":
            raise TaskLeaseHeldError(f"{arn}: task {task_id} is leased to another worker")
        if claim.result is not None:
            return claim.result
        result = self._invoke(message)
        self.log.finish_task(arn, task_id, self.owner, result)
        return result

    def _invoke(self, message: Message) -> dict[str, Any]:
        """Call the task's resource and return its result as an encoded engine event."""
        task_id = str(message.body["task_id"])
        outcome = self.invoker(message.body)
        event: Event = (
            TaskSucceeded(task_id, outcome.output)
            if outcome.ok
            else TaskFailed(task_id, outcome.error, outcome.cause)
        )
        if outcome.ok and describe(str(message.body.get("resource", ""))).wait_for_token:
            event = TaskStarted(task_id)  # sent: the result comes with SendTaskSuccess
        return encode_event(event)


def child_arn(parent_arn: str, child_id: str) -> str:
    """The ARN of a child execution: its own partition in the log."""
    return f"{parent_arn}#{child_id.strip('/').replace('/', '.')}"


def _store_state(state: ExecutionState) -> dict[str, Any]:
    """The state as stored: a child's copy of its root's input is left out (see _load_state)."""
    if state.parent is None:
        return encode_state(state)
    data = encode_state(state)
    data["input"] = None
    return data


def _open_leases(attributes: dict[str, Any], state: ExecutionState) -> dict[str, Any]:
    """The deferred-task leases of ``attributes`` whose attempts are still open in ``state``."""
    leases = attributes.get(TASK_LEASES) or {}
    kept = {task_id: lease for task_id, lease in leases.items() if task_id in state.tasks}
    return {TASK_LEASES: kept} if kept else {}


def _delay(seconds: float) -> int:
    return max(0, min(MAX_DELAY_SECONDS, math.ceil(seconds)))
