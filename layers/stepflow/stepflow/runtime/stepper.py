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

import math
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from stepflow.asl import StateMachine
from stepflow.engine import (
    Command,
    ContinueLater,
    Event,
    RunTask,
    Start,
    StartTimer,
    Stop,
    TaskFailed,
    TaskSucceeded,
    decide,
    new_execution,
)
from stepflow.engine.codec import decode_state, encode_state
from stepflow.runtime.messages import Message, decode_event, encode_event, task_body
from stepflow.runtime.ports import (
    ConflictError,
    CoordinationLog,
    ExecutionAlreadyExistsError,
    ExecutionRecord,
    MessageBus,
)

MAX_DELAY_SECONDS = 900
"""The longest delay a queue gives a message (SQS); longer waits re-arm themselves."""

TaskInvoker = Callable[[dict[str, Any]], tuple[bool, Any, str | None, str | None]]
"""Runs an inline task body; returns (ok, output, error, cause)."""


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
    ) -> None:
        self.log = log
        self.bus = bus
        self.definitions = definitions
        self.clock = clock
        self.invoker = invoker
        self.max_conflicts = max_conflicts
        self.owner = owner or uuid.uuid4().hex
        self.task_lease_seconds = task_lease_seconds

    def start_execution(
        self, *, state_machine_arn: str, name: str, input: Any, seed: int
    ) -> ExecutionRecord:
        """Create an execution and run its first decision; idempotent by name.

        The same name with the same input returns the existing execution; a
        different input raises :class:`ExecutionInputMismatchError`.
        """
        definition = self.definitions(state_machine_arn)
        now = self.clock()
        sm_name = state_machine_arn.rsplit(":", 1)[-1]
        state = new_execution(
            name=name, input=input, now=now, state_machine_name=sm_name, seed=seed
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
            outbox=self._outbox(arn, 1, decision.commands),
            start_date=now,
            stop_date=None if decision.state.status == "RUNNING" else now,
        )
        try:
            self.log.create(record, decision.events)
        except ExecutionAlreadyExistsError as exc:
            existing = exc.existing
            if existing.input != input or existing.state_machine_arn != state_machine_arn:
                raise ExecutionInputMismatchError(
                    f"execution {name!r} already exists with a different input"
                ) from exc
            self._flush(existing)
            return existing
        self._flush(record)
        return record

    def handle(self, message: Message) -> None:
        """Process one delivery. Raises (so the message is redelivered) only on failure."""
        now = self.clock()
        if message.not_before > now:
            self.bus.send(message, _delay(message.not_before - now))
            return
        if message.kind == "task":
            self._run_task(message)
            return
        self._apply(message.execution_arn, decode_event(message.body))

    def stop_execution(
        self, execution_arn: str, *, error: str | None = None, cause: str | None = None
    ) -> ExecutionRecord | None:
        """StopExecution: abort a running execution (no effect on a finished one)."""
        self._apply(execution_arn, Stop(error, cause))
        return self.log.get(execution_arn)

    def _apply(self, execution_arn: str, event: Event) -> None:
        """Decide ``event`` on the latest record and commit; reload and retry on conflict."""
        for _ in range(self.max_conflicts):
            record = self.log.get(execution_arn)
            if record is None:
                return
            if record.outbox:  # a previous sender crashed after committing
                self._flush(record)
            if record.status != "RUNNING":
                return
            now = self.clock()
            state = decode_state(record.state)
            decision = decide(self.definitions(record.state_machine_arn), state, event, now)
            if not decision.events and not decision.commands and decision.state == state:
                return  # a duplicate or stale message
            seq = record.seq + 1
            status = decision.state.status
            new = replace(
                record,
                seq=seq,
                status=status,
                state=encode_state(decision.state),
                outbox=self._outbox(record.execution_arn, seq, decision.commands),
                stop_date=None if status == "RUNNING" else now,
            )
            try:
                self.log.commit(new, record.seq, decision.events)
            except ConflictError:
                continue
            self._flush(new)
            return
        raise ConflictError(execution_arn, -1)

    def _outbox(self, arn: str, seq: int, commands: list[Command]) -> tuple[Message, ...]:
        messages = []
        for i, command in enumerate(commands):
            message_id = f"{arn}#{seq}#{i}"
            if isinstance(command, RunTask):
                messages.append(Message(arn, message_id, "task", task_body(command)))
            elif isinstance(command, StartTimer):
                body = {"type": "TimerFired", "timer_id": command.timer_id}
                messages.append(Message(arn, message_id, "event", body, command.fire_at))
            elif isinstance(command, ContinueLater):
                messages.append(Message(arn, message_id, "event", {"type": "Continue"}))
        return tuple(messages)

    def _flush(self, record: ExecutionRecord) -> None:
        now = self.clock()
        for message in record.outbox:
            self.bus.send(message, _delay(message.not_before - now))
        self.log.clear_outbox(record.execution_arn, record.seq)

    def _run_task(self, message: Message) -> None:
        """Run an inline task attempt once: lease it, run it, record and send its result.

        A duplicate of a finished attempt re-sends the recorded result; one whose
        lease is live raises :class:`TaskLeaseHeldError` (retry later). Only a
        crash between running the task and recording its result re-runs it.
        """
        body = message.body
        arn, task_id = message.execution_arn, str(body["task_id"])
        claim = self.log.claim_task(arn, task_id, self.owner, self.clock(), self.task_lease_seconds)
        if claim.status == "busy":
            raise TaskLeaseHeldError(f"{arn}: task {task_id} is leased to another worker")
        result = claim.result
        if result is None:
            ok, output, error, cause = self.invoker(body)
            event = TaskSucceeded(task_id, output) if ok else TaskFailed(task_id, error, cause)
            result = encode_event(event)
            self.log.finish_task(arn, task_id, self.owner, result)
        self.bus.send(Message(arn, f"{message.id}#result", "event", result))


def _delay(seconds: float) -> int:
    return max(0, min(MAX_DELAY_SECONDS, math.ceil(seconds)))
