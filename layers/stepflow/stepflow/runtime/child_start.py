"""A map run's child stored with its first decision: one write instead of two.

A child of a map run used to be created bare (a ``PutItem`` of its head at ``seq`` 0)
and then started by a second write (a transaction: the head again, and the first
events). :func:`first_commit` decides the child's ``Start`` on the record the run
prepared, so the stepper creates it at ``seq`` 1 with its first events and outbox in
one conditional write. The outbox message ids are those the two-write path gives
(``<arn>#1#<i>``), and a create that finds the child exists (a duplicate delivery)
falls back to applying ``Start`` on the stored child, which the engine ignores if it
started already: either way the child starts once.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from stepflow.asl import StateMachine
from stepflow.data.budget import Budget
from stepflow.engine import ParameterCheck, Start, decide
from stepflow.engine.codec import decode_state
from stepflow.limits import Limits
from stepflow.runtime.outbox import build_outbox, store_state
from stepflow.runtime.ports import ExecutionRecord


def first_commit(
    record: ExecutionRecord,
    root_input: Any,
    definition: StateMachine,
    now: float,
    *,
    budget: Budget,
    limits: Limits,
    check_parameters: ParameterCheck | None,
) -> tuple[ExecutionRecord, list[dict[str, Any]]]:
    """The child's record at ``seq`` 1 after its ``Start``, and that decision's events.

    ``record`` is the child as prepared at ``seq`` 0 (see
    :meth:`stepflow.runtime.map_runs.MapRuns.prepare_child`); ``root_input`` its
    ``$$.Execution.Input``: its own input, or an inline Map iteration's parent's.
    """
    state = decode_state(record.state)
    state.input = root_input
    decision = decide(
        definition,
        state,
        Start(),
        now,
        consume=True,
        time_budget=budget,
        limits=limits,
        check_parameters=check_parameters,
    )
    after = decision.state
    outbox = build_outbox(
        record.execution_arn, 1, decision.commands, after, record.state_machine_arn, now
    )
    started = replace(
        record,
        seq=1,
        status=after.status,
        state=store_state(after),
        outbox=outbox,
        stop_date=None if after.status == "RUNNING" else now,
    )
    return started, list(decision.events)
