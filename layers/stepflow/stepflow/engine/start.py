"""Creating the state of a new execution."""

from __future__ import annotations

import hashlib
from typing import Any

from stepflow.engine.context import iso
from stepflow.engine.model import ExecutionState, StartChild

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
    child_limit: int | None = None,
    token_key: str = "",
) -> ExecutionState:
    """The state of an execution about to receive its ``Start`` event.

    ``seed`` keys the execution's task tokens and retry jitter: the durable
    runtime passes a secret random value, tests a fixed one. ``token_key``
    (secret, >= 128 random bits) signs task tokens instead of the seed when set.
    ``child_limit``: see :class:`ExecutionState`.
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
        token_key=token_key,
        child_limit=child_limit,
    )


def new_child_execution(
    parent: ExecutionState, parent_arn: str, command: StartChild
) -> ExecutionState:
    """The state of the child execution a ``StartChild`` command asks for.

    It presents its parent's execution in the context object (``$$.Execution``)
    as an inline iteration would, and gets a seed of its own so that its task
    tokens differ from every other child's.
    """
    material = f"{parent.seed}:{command.child_id}".encode()
    return ExecutionState(
        execution_arn=parent.execution_arn,
        name=parent.name,
        state_machine_arn=parent.state_machine_arn,
        state_machine_name=parent.state_machine_name,
        role_arn=parent.role_arn,
        start_time=parent.start_time,
        input=parent.input,
        root_input=command.input,
        seed=int.from_bytes(hashlib.sha256(material).digest()[:8], "big"),
        token_key=_child_key(parent.token_key, command.child_id),
        child_limit=parent.child_limit,
        parent={
            "arn": parent_arn,
            "child_id": command.child_id,
            "root_arn": parent.parent["root_arn"] if parent.parent else parent_arn,
        },
        machine=command.machine,
        outer_variables=command.variables,
    )


def _child_key(parent_key: str, child_id: str) -> str:
    """A child's token key: derived from its parent's, as secret and as long."""
    if not parent_key:
        return ""
    return hashlib.sha256(f"{parent_key}:{child_id}".encode()).hexdigest()
