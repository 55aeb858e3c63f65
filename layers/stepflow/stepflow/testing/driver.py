"""The in-memory driver: runs an execution to the end on a virtual clock."""

from __future__ import annotations

import heapq
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from stepflow.asl import StateMachine, parse
from stepflow.data.serialize import dumps
from stepflow.engine import (
    Complete,
    Continue,
    ContinueLater,
    Event,
    RunTask,
    Start,
    StartTimer,
    TaskFailed,
    TaskSucceeded,
    TimerFired,
    decide,
    new_execution,
)
from stepflow.testing.handlers import Handler, run_handler
from stepflow.testing.result import ExecutionResult, TransitionLimitError

__all__ = ["Handler", "TransitionLimitError", "execute"]


def execute(
    definition: str | Mapping[str, Any] | StateMachine,
    input: Any = None,
    *,
    handlers: Mapping[str, Handler] | None = None,
    name: str | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    seed: int | None = 0,
    start_time: datetime | None = None,
    max_transitions: int = 1_000_000,
    durable: bool | str = False,
) -> ExecutionResult:
    """Run ``definition`` on ``input`` to the end, in memory, on a virtual clock.

    Waits, retry back-off and timeouts take no real time: the clock jumps to
    the next timer when nothing else can happen. ``handlers`` maps a Task
    resource (or a Lambda function name) to ``fn(input) -> output``; an
    exception fails the task with its ``error`` attribute or class name.
    ``on_event`` sees every history event as it is recorded.
    Raises :class:`stepflow.asl.DefinitionError` for an invalid definition and
    :class:`TransitionLimitError` past ``max_transitions`` states entered.

    With ``durable=True`` (or ``"moto"``) the execution runs through the
    durable runtime: the DynamoDB coordination log on moto, every message
    delivered through the real stepper Lambda handler. ``durable="memory"``
    uses in-memory ports instead (faster). Either way the outcome and history
    must equal the in-memory run's: one implementation of the semantics.
    """
    machine = definition if isinstance(definition, StateMachine) else parse(definition)
    bound = dict(handlers or {})
    now = start_time.timestamp() if start_time else round(time.time(), 3)
    state = new_execution(
        name=name or str(uuid.uuid4()),
        input={} if input is None else input,
        now=now,
        seed=seed if seed is not None else uuid.uuid4().int,
    )
    if durable:
        from stepflow.testing.durable import execute_durable

        return execute_durable(
            machine,
            state.input,
            handlers=bound,
            name=state.name,
            on_event=on_event,
            seed=state.seed,
            now=now,
            max_messages=max_transitions,
            backend="moto" if durable is True else str(durable),
        )
    history: list[dict[str, Any]] = []
    immediate: deque[Event] = deque([Start()])
    timers: list[tuple[float, int, str]] = []
    sequence = transitions = 0
    while True:
        if immediate:
            event = immediate.popleft()
        elif timers:
            fire_at, _, timer_id = heapq.heappop(timers)
            now = max(now, fire_at)
            event = TimerFired(timer_id)
        else:
            break
        decision = decide(machine, state, event, now, consume=True)
        state = decision.state
        history.extend(decision.events)
        transitions += sum(1 for e in decision.events if e["type"].endswith("StateEntered"))
        if transitions > max_transitions:
            raise TransitionLimitError(
                f"the execution entered more than {max_transitions} states; "
                "raise max_transitions if that is intended"
            )
        if on_event is not None:
            for record in decision.events:
                on_event(record)
        for command in decision.commands:
            if isinstance(command, RunTask):
                outcome = run_handler(bound, command)
                immediate.append(
                    TaskSucceeded(command.task_id, outcome.output)
                    if outcome.ok
                    else TaskFailed(command.task_id, outcome.error, outcome.cause)
                )
            elif isinstance(command, StartTimer):
                sequence += 1
                heapq.heappush(timers, (command.fire_at, sequence, command.timer_id))
            elif isinstance(command, ContinueLater):
                immediate.append(Continue())
        if any(isinstance(c, Complete) for c in decision.commands):
            break
    return ExecutionResult(
        status=state.status,
        output=dumps(state.output) if state.status == "SUCCEEDED" else None,
        error=state.error,
        cause=state.cause,
        history=history,
    )
