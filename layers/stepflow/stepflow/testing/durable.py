"""Run an execution through the durable runtime (Stepper, log, bus) on in-memory ports."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from stepflow.asl import StateMachine
from stepflow.engine import RunTask
from stepflow.engine.codec import decode_state
from stepflow.engine.decide import dumps
from stepflow.runtime import InMemoryBus, InMemoryLog, Stepper
from stepflow.testing.handlers import Handler, run_handler
from stepflow.testing.result import ExecutionResult, TransitionLimitError

STATE_MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:StateMachine"


def execute_durable(
    machine: StateMachine,
    input: Any,
    *,
    handlers: Mapping[str, Handler],
    name: str,
    on_event: Callable[[dict[str, Any]], None] | None,
    seed: int,
    now: float,
    max_messages: int,
) -> ExecutionResult:
    """Drive the execution message by message until the bus is empty."""
    log = InMemoryLog()
    bus = InMemoryBus(now)

    def invoke(body: dict[str, Any]) -> tuple[bool, Any, str | None, str | None]:
        command = RunTask(
            body["task_id"],
            body["resource"],
            body["input"],
            body["state_name"],
            body.get("timeout_seconds"),
            None,
            body.get("task_token"),
        )
        outcome = run_handler(handlers, command)
        return outcome.ok, outcome.output, outcome.error, outcome.cause

    stepper = Stepper(
        log=log,
        bus=bus,
        definitions=lambda _arn: machine,
        clock=lambda: bus.now,
        invoker=invoke,
    )
    record = stepper.start_execution(
        state_machine_arn=STATE_MACHINE_ARN, name=name, input=input, seed=seed
    )
    handled = 0
    while (message := bus.receive()) is not None:
        handled += 1
        if handled > max_messages:
            raise TransitionLimitError(f"the execution needed more than {max_messages} messages")
        stepper.handle(message)
        bus.ack(message)
    final = log.get(record.execution_arn)
    assert final is not None
    history: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = log.history(record.execution_arn, next_token=token)
        history.extend(page.events)
        if page.next_token is None:
            break
        token = page.next_token
    if on_event is not None:
        for event in history:
            on_event(event)
    state = decode_state(final.state)
    return ExecutionResult(
        status=state.status,
        output=dumps(state.output) if state.status == "SUCCEEDED" else None,
        error=state.error,
        cause=state.cause,
        history=history,
    )
