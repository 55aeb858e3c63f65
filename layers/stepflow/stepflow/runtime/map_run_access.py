"""May a distributed Map start its child executions? The execution role's StartExecution.

AWS starts a distributed Map's children as the state machine's execution role, which
needs ``states:StartExecution`` on the state machine itself ("IAM policies for using
Distributed Map states"); without it the execution fails at the Map. StepFlow asks a
:class:`MapRunStartCheck` (the deployed stack: IAM, ``STEPFLOW_NESTED_START_CHECK=iam``)
when a run is first created: a refusal fails the Map (``MapRunFinished`` FAILED to the
parent, the run never created, so a redrive asks again); a check that cannot be made
raises, and the delivery is tried again (never allowed without an answer). An inline
Map's run (iterations, not executions) is not checked, as on AWS.

No I/O of its own: the check is a port.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from stepflow.engine import MapRunFinished
from stepflow.runtime.messages import Message, encode_event
from stepflow.runtime.ports import CoordinationLog

ACTION = "states:StartExecution"
ERROR = "States.Runtime"
"""The error the Map fails with when the role may not start its children."""


class MapRunStartCheck(Protocol):
    """Whether ``role_arn`` may ``states:StartExecution`` on ``state_machine_arn``."""

    def may_start(self, principal: str, machine_arn: str) -> bool:
        """True if allowed, False if denied; raises if the check cannot be made."""
        ...


def machine_of_execution(execution_arn: str) -> str:
    """The (unqualified) state machine ARN of an execution ARN."""
    parts = execution_arn.split(":")
    return ":".join([*parts[:5], "stateMachine", parts[6]])


def denial_cause(role_arn: str, machine_arn: str) -> str:
    """IAM's text for the denial (as the nested start's ``AccessDeniedException``)."""
    who = role_arn or "an execution with no role"
    return (
        f"User: {who} is not authorized to perform: {ACTION} on resource: {machine_arn} "
        f"because no identity-based policy allows the {ACTION} action"
    )


def refused_starts(
    check: MapRunStartCheck, log: CoordinationLog, key: str, deliveries: Sequence[Message]
) -> tuple[list[Message], list[Message]]:
    """``deliveries`` less a refused start, and the messages that fail its Map.

    Only the start of a run not created yet is checked: a redelivered start, or one
    for a run that exists, is the coordinator's to ignore or revive.
    """
    start = next((m for m in deliveries if m.body.get("type") == "StartMapRun"), None)
    if start is None:
        return list(deliveries), []
    spec = start.body.get("spec") or {}
    if spec.get("inline") or log.get(key) is not None:
        return list(deliveries), []
    parent = str(start.body.get("parent_arn") or spec.get("execution_arn") or "")
    role, machine = str(spec.get("role_arn") or ""), machine_of_execution(parent)
    if role and check.may_start(role, machine):
        return list(deliveries), []
    event = MapRunFinished(
        str(spec.get("run_id")),
        "FAILED",
        None,
        ERROR,
        denial_cause(role, machine),
        parent_redrive=int(start.body.get("parent_redrive") or 0),
    )
    failed = Message(parent, f"{start.id}#denied", "event", encode_event(event))
    return [m for m in deliveries if m is not start], [failed]
