"""Creating the state of a new execution."""

from __future__ import annotations

from typing import Any

from stepflow.engine.context import iso
from stepflow.engine.model import ExecutionState

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"


def new_execution(
    *,
    name: str,
    input: Any,
    now: float,
    state_machine_name: str = "StateMachine",
    region: str = DEFAULT_REGION,
    account: str = DEFAULT_ACCOUNT,
    role_arn: str | None = None,
    seed: int = 0,
) -> ExecutionState:
    """The state of an execution about to receive its ``Start`` event.

    ``seed`` keys the execution's task tokens and retry jitter: the durable
    runtime passes a secret random value, tests a fixed one.
    """
    base = f"arn:aws:states:{region}:{account}"
    return ExecutionState(
        execution_arn=f"{base}:execution:{state_machine_name}:{name}",
        name=name,
        state_machine_arn=f"{base}:stateMachine:{state_machine_name}",
        state_machine_name=state_machine_name,
        role_arn=role_arn or f"arn:aws:iam::{account}:role/StepFlowExecutionRole",
        start_time=iso(now),
        input=input,
        seed=seed,
    )
