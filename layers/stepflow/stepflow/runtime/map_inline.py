"""An inline Map's map run (a Map past ``child_limit``): what differs from a distributed one.

The coordinator (:mod:`stepflow.runtime.map_runs`) is the same; an inline run
(``"inline": true`` in its spec, ``RunHead.inline``) differs only here: its children
present the parent's execution as ``$$.Execution`` and are listed nowhere, a failed
iteration (without tolerance) fails the run with its own error, and each commit of
the run reports its iterations' events to the parent (``MapIterations``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from stepflow.engine import (
    CancelMapRun,
    Command,
    ExecutionState,
    MapIterations,
    UnreportedIterations,
)
from stepflow.runtime.map_run_state import RunHead, run_key
from stepflow.runtime.messages import Message, encode_event
from stepflow.runtime.ports import CoordinationLog

REPORT_EVENTS = 500
"""Iteration events an inline run sends its parent in one report (one parent commit)."""


def child_attributes(config: dict[str, Any]) -> dict[str, str]:
    """A child's record attributes: a distributed Map's child is listed under its map run.

    (Its ``map_run_arn`` says so: see :func:`stepflow.runtime.registry.listing_key`; the
    ARN is not stored twice, the head stays smaller.) An inline Map's iteration is no
    execution of AWS's: it is listed nowhere.
    """
    if config.get("inline"):
        return {"listed_under": ""}
    return {"map_run_arn": str(config["map_run_arn"])}


def inline_failure(head: RunHead, body: dict[str, Any]) -> None:
    """An inline Map without tolerance fails with its first failed iteration's error."""
    if head.error is not None or head.status != "RUNNING":
        return
    if head.tolerated_count is not None or head.tolerated_percentage is not None:
        return  # exceeding a threshold fails with States.ExceedToleratedFailureThreshold
    error = body.get("error")
    if error is None:
        error = "States.Aborted" if body.get("status") == "ABORTED" else "States.Runtime"
    head.error, head.cause = str(error), body.get("cause")


def as_iteration(state: ExecutionState, config: dict[str, Any], parent_redrive: int = 0) -> None:
    """An inline Map's iteration presents its parent's execution as ``$$.Execution``.

    Its ``input`` (the root's) is loaded from ``root_arn`` (see ``store_state``); an
    iteration first started by a redrive of the parent (``parent_redrive``, the parent's
    redrive count when it started or redrove the run) sees that ``RedriveCount``.
    """
    state.redrive_count = parent_redrive
    parent = dict(config.get("execution") or {})
    state.execution_arn = str(config["execution_arn"])
    state.name = str(parent["name"])
    state.state_machine_arn = str(parent["state_machine_arn"])
    state.state_machine_name = str(parent["state_machine_name"])
    state.role_arn = str(parent["role_arn"])
    state.start_time = str(parent["start_time"])
    state.child_limit = parent.get("child_limit")
    assert state.parent is not None
    state.parent["root_arn"] = str(parent["root_arn"])


def report(head: RunHead, progress: list[list[Any]], outbox: list[Message]) -> None:
    """Send an inline run's progress to its parent: every REPORT_EVENTS events, and at its end.

    The events wait in the run's head until then (at most REPORT_EVENTS plus one commit's),
    so the parent's head, which holds the Map's input, is rewritten N / REPORT_EVENTS
    times, not once per batch of children. The last report travels inside
    ``MapRunFinished`` so that it cannot arrive after the end.
    """
    head.pending = [*head.pending, *progress]
    end = next((i for i, m in enumerate(outbox) if m.body.get("type") == "MapRunFinished"), None)
    if not head.pending or (end is None and len(head.pending) < REPORT_EVENTS):
        return
    head.reports += 1
    events, head.pending = head.pending, []
    if end is not None:
        message = outbox[end]
        outbox[end] = replace(message, body={**message.body, "report": [head.reports, events]})
        return
    body = encode_event(MapIterations(head.run_id, head.reports, events))
    outbox.insert(0, Message(head.parent_arn, "", "event", body))


def unreported(
    log: CoordinationLog, parent_arn: str, commands: Sequence[Command]
) -> dict[str, UnreportedIterations]:
    """What the inline runs a decision cancels have not reported to the parent (by run id).

    Read from each run's head (one read per cancelled run, only when one is cancelled),
    for the parent to record in the decision that abandons the run (see
    :func:`stepflow.engine.map_inline.abandon`); the run, cancelled, drops it
    (:func:`cancelled`). A distributed Map's run, or one that ended, is left out.
    """
    found: dict[str, UnreportedIterations] = {}
    for command in commands:
        if not isinstance(command, CancelMapRun) or command.run_id in found:
            continue
        record = log.get(run_key(parent_arn, command.run_id))
        if record is None or record.status != "RUNNING" or not record.state.get("inline"):
            continue
        head = RunHead.from_json(dict(record.state))
        pending = tuple((str(outcome), int(index)) for outcome, index in head.pending)
        running = tuple(sorted(int(position) for position in head.running))
        found[command.run_id] = UnreportedIterations(pending, running)
    return found


def cancelled(head: RunHead) -> None:
    """An inline run cancelled by its parent: the parent recorded what it held back."""
    if head.inline:
        head.pending = []
