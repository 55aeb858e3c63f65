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
from stepflow.runtime import leases
from stepflow.runtime.leases import LeaseConflictError, LeaseFence, TaskLease
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


TaskGuard = Callable[[ExecutionRecord | None], LeaseFence | None]
"""Checks a record before a worker's report is applied: raises to refuse it (nothing is
written), or returns the lease fence the commit is conditioned on (None: none)."""

_LEGACY_LEASE_ATTRIBUTES = ("lease_owner", "lease_until", "task_leases")
"""Head attributes of the lease mechanisms that :mod:`stepflow.runtime.leases` replaced."""


class ExecutionInputMismatchError(Exception):
    """StartExecution with an existing name but a different input or state machine."""


class TaskLeaseHeldError(Exception):
    """Another worker is running this task attempt; deliver the message again later.

    ``until`` is when its lease runs out (epoch seconds).
    """

    def __init__(self, message: str, until: float = 0.0) -> None:
        super().__init__(message)
        self.until = until


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

        Running a task right here saves two queue hops: the commit of its result
        replaces the outbox that held it. The inline tasks of one commit are
        claimed first, together, through one lease record (its task id is
        ``outbox#<seq>``, see :func:`stepflow.runtime.leases.claim`): one
        conditional write for a Map's ten tasks. Tasks taken over from an older
        outbox (a crashed or stale stepper's) are claimed one by one as well,
        so a task that ran meanwhile from the queue is not run again.
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
            held, claimed = self._claim_inline(tasks)
            try:
                results = [self._run_inline(m, takeover) for m, takeover in held]
            except Exception:
                self._release(claimed)  # a redelivery may take them over at once
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
    ) -> list[tuple[Message, bool]]:
        """Decide ``events`` on the latest record and commit them as one write.

        Returns the task messages to run inline, each with whether it is taken
        over from an earlier commit's outbox (those come first).
        ``handled`` are tasks this stepper already ran, not to be repaired again.
        On a conflict, reload and decide again: the engine ignores any event the
        winning writer already applied.
        """
        for _ in range(self.max_conflicts):
            record = self.log.get(execution_arn)
            fence = guard(record) if guard is not None else None
            if record is None:
                return []
            pending = tuple(m for m in record.outbox if m.id not in handled)
            repaired = (
                [(m, True) for m in self._flush(replace(record, outbox=pending))] if pending else []
            )
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
            if not history and not commands and state == before:
                if fence is None or fence.new is None:
                    return repaired  # duplicates or stale messages only
                try:  # only the lease changes (a heartbeat, a release): no commit needed
                    self.log.put_lease(fence.new)
                except LeaseConflictError:
                    continue
                return repaired
            seq = record.seq + 1
            outbox = self._outbox(
                record.execution_arn, seq, commands, state, record.state_machine_arn
            )
            kept = {k: v for k, v in record.attributes.items() if k not in _LEGACY_LEASE_ATTRIBUTES}
            new = replace(
                record,
                seq=seq,
                status=state.status,
                state=_store_state(state),
                outbox=outbox,
                stop_date=None if state.status == "RUNNING" else now,
                attributes=kept,
            )
            try:
                self.log.commit(new, record.seq, history, fence=fence)
            except ConflictError:
                continue
            return repaired + [(m, False) for m in self._flush(new)]
        raise ConflictError(execution_arn, -1)

    def _deferred(self, message: Message) -> bool:
        return self.router is not None and self.router.deferred(message)

    def _claim_inline(
        self, tasks: list[tuple[Message, bool]]
    ) -> tuple[list[tuple[Message, bool]], list[TaskLease]]:
        """The inline tasks this stepper now holds, claimed one commit's outbox at a time.

        Returns them and the leases claimed for them.
        A batch leased to another live stepper is left to it: its messages are
        queued to be looked at again (as queued tasks) when that lease runs out.
        """
        batches: dict[str, list[tuple[Message, bool]]] = {}
        for task in tasks:  # message ids are <arn>#<seq of the commit>#<index>
            batches.setdefault(f"outbox#{task[0].id.rsplit('#', 2)[-2]}", []).append(task)
        held: list[tuple[Message, bool]] = []
        claimed: list[TaskLease] = []
        now = self.clock()
        for key, batch in batches.items():
            arn = batch[0][0].execution_arn
            claim = leases.claim(self.log, arn, key, self.owner, now, self.task_lease_seconds)
            if claim.status == "acquired" and claim.lease is not None:
                held.extend(batch)
                claimed.append(claim.lease)
                continue
            until = claim.lease.until if claim.lease is not None else now
            for message, _ in batch:
                self.bus.send(message, _delay(until - now))
        return held, claimed

    def _release(self, claimed: list[TaskLease]) -> None:
        """Give back leases this stepper holds (best effort: it is failing already)."""
        for lease in claimed:
            with contextlib.suppress(Exception):
                self.log.put_lease(leases.release(lease, self.clock()))

    def _run_inline(self, message: Message, takeover: bool) -> dict[str, Any] | None:
        """Run a held inline task; a taken-over one through its own lease (None: not now)."""
        if not takeover:
            return self._invoke(message)
        try:
            return self._task_result(message, check_open=False)
        except TaskLeaseHeldError as held:
            self.bus.send(message, _delay(held.until - self.clock()))
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
        if result is not None:
            self.bus.send(Message(message.execution_arn, f"{message.id}#result", "event", result))

    def _task_result(self, message: Message, *, check_open: bool = True) -> dict[str, Any] | None:
        """Run a queued inline task attempt once: lease it, run it, record its result event.

        None if the attempt is no longer open in the head (its result was
        committed, or it was cancelled). A duplicate of a finished attempt gets
        the recorded result; one whose lease is live raises
        :class:`TaskLeaseHeldError` (retry later). Only a crash between running
        the task and recording its result re-runs it.
        """
        arn, task_id = message.execution_arn, str(message.body["task_id"])
        if check_open:  # (a task taken over from an outbox just read is open)
            record = self.log.get(arn)
            if record is None or task_id not in decode_state(record.state).tasks:
                return None
        now = self.clock()
        claim = leases.claim(self.log, arn, task_id, self.owner, now, self.task_lease_seconds)
        if claim.status == "busy":
            until = claim.lease.until if claim.lease is not None else now
            raise TaskLeaseHeldError(f"{arn}: task {task_id} is leased to another worker", until)
        if claim.result is not None:
            return claim.result
        assert claim.lease is not None  # acquired
        try:
            result = self._invoke(message)
        except Exception:
            self._release([claim.lease])
            raise
        leases.finish(self.log, claim.lease, result)
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


def _delay(seconds: float) -> int:
    return max(0, min(MAX_DELAY_SECONDS, math.ceil(seconds)))
