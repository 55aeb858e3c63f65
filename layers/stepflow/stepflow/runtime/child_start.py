"""A map run's child stored with its first decision: one write instead of two.

A child of a map run used to be created bare (a ``PutItem`` of its head at ``seq`` 0)
and then started by a second write (a transaction: the head again, and the first
events). :func:`first_commit` turns the stepper's decision of the child's ``Start``
(on the record the run prepared) into the record, so the stepper creates it at
``seq`` 1 with its first events and outbox in one conditional write. The outbox
message ids are those the two-write path gives (``<arn>#1#<i>``), and a create that
finds the child exists (a duplicate delivery) falls back to applying ``Start`` on
the stored child, which the engine ignores if it started already: either way the
child starts once.
"""

from __future__ import annotations

from dataclasses import replace

from stepflow.engine import Command, ExecutionState
from stepflow.runtime.outbox import build_outbox, store_state
from stepflow.runtime.ports import ExecutionRecord


def first_commit(
    record: ExecutionRecord, after: ExecutionState, commands: list[Command], now: float
) -> ExecutionRecord:
    """The child's record at ``seq`` 1, after its ``Start`` decided into ``after``/``commands``.

    ``record`` is the child as prepared at ``seq`` 0 (see
    :meth:`stepflow.runtime.map_runs.MapRuns.prepare_child`); the stepper decides the
    ``Start`` as it decides every event (``stepper_commit._decide``), with the child's
    ``$$.Execution.Input`` (its own input, or an inline Map iteration's parent's).
    """
    outbox = build_outbox(record.execution_arn, 1, commands, after, record.state_machine_arn, now)
    return replace(
        record,
        seq=1,
        status=after.status,
        state=store_state(after),
        outbox=outbox,
        stop_date=None if after.status == "RUNNING" else now,
    )
