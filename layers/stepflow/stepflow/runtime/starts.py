"""The pure parts of starting an execution: its first state, first decision and first record.

:meth:`stepflow.runtime.stepper.Stepper.start_execution` stores what these
build; nothing here touches the log or a queue.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from stepflow.asl import StateMachine
from stepflow.data.budget import Budget, DecisionDeferred
from stepflow.engine import (
    Decision,
    ExecutionState,
    Fail,
    ParameterCheck,
    Start,
    decide,
    new_execution,
)
from stepflow.engine.codec import encode_state
from stepflow.errors import StatesErrorName
from stepflow.limits import Limits
from stepflow.runtime.messages import Message, encode_event
from stepflow.runtime.outbox import build_outbox
from stepflow.runtime.ports import ExecutionRecord, UnstorableDataError


class ExecutionInputMismatchError(Exception):
    """StartExecution reused a name with a different input (``ExecutionAlreadyExists``)."""


@dataclass(frozen=True, slots=True)
class NewExecution:
    """What StartExecution was asked for, kept for the record of its first commit."""

    state_machine_arn: str
    name: str
    input: Any
    now: float
    attributes: dict[str, Any] = field(default_factory=dict)
    role_arn: str | None = None
    """The state machine's roleArn (None: the engine's default execution role)."""
    caller: dict[str, Any] | None = None
    """The ``.sync`` task waiting for this execution's end (``ExecutionState.caller``)."""


def first_state(new: NewExecution, *, seed: int, child_limit: int | None) -> ExecutionState:
    """The engine state of a new execution, before its first decision."""
    # arn:aws:states:<region>:<account>:stateMachine:<name>[:<version, alias or revision>]
    parts = new.state_machine_arn.split(":")
    where = {"region": parts[3], "account": parts[4]} if len(parts) >= 7 else {}
    state = new_execution(
        name=new.name,
        input=new.input,
        now=new.now,
        state_machine_name=parts[6] if len(parts) >= 7 else parts[-1],
        **where,
        role_arn=new.role_arn,
        seed=seed,
        child_limit=child_limit,
        token_key=secrets.token_hex(16),
    )
    state.caller = new.caller
    return state


def first_decision(
    definition: StateMachine,
    state: ExecutionState,
    now: float,
    *,
    budget: Budget,
    limits: Limits,
    check_parameters: ParameterCheck | None = None,
    defer: bool = False,
    compact: bool = False,
) -> tuple[Decision, tuple[Message, ...]]:
    """The decision on ``Start``, and the outbox that replaces its own when it was deferred.

    When ``budget`` defers it (too slow to decide while the caller waits), the
    execution is stored undecided with a Start message in its outbox, for the
    stepper behind the queue; the engine ignores a second Start, so a
    redelivery cannot start it twice. ``defer`` leaves it to that stepper in any case
    (a ``.sync`` child: its caller records TaskSubmitted before the child can end).
    ``compact``: see :func:`~stepflow.engine.decide` (for a log that takes compact events).
    """
    try:
        if defer:
            raise DecisionDeferred("deferred by the caller")
        decision = decide(
            definition,
            state,
            Start(),
            now,
            time_budget=budget,
            limits=limits,
            check_parameters=check_parameters,
            compact=compact,
        )
        return decision, ()
    except DecisionDeferred:
        arn = state.execution_arn
        start = Message(arn, f"{arn}#start", "event", encode_event(Start()))
        return Decision([], state, []), (start,)


def first_record(
    new: NewExecution, decision: Decision, deferred: tuple[Message, ...]
) -> ExecutionRecord:
    """The head of a new execution at ``seq`` 1 (``deferred`` replaces the decision's outbox)."""
    arn = decision.state.execution_arn
    return ExecutionRecord(
        execution_arn=arn,
        state_machine_arn=new.state_machine_arn,
        name=new.name,
        input=new.input,
        status=decision.state.status,
        seq=1,
        state=encode_state(decision.state),
        outbox=deferred
        or build_outbox(arn, 1, decision.commands, decision.state, new.state_machine_arn, new.now),
        start_date=new.now,
        stop_date=None if decision.state.status == "RUNNING" else new.now,
        attributes=dict(new.attributes),
    )


def unstorable(exc: UnstorableDataError) -> Fail:
    """The failure of an execution whose next state the log cannot store."""
    return Fail(
        StatesErrorName.RUNTIME.value,
        f"The execution's next state could not be stored: {exc.problem}.",
    )
