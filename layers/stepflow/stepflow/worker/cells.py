"""Cells on a task queue: the worker side of ``STEPFLOW_CELL_QUEUES`` (docs/cells-workers.md).

``stepflow worker --cells module --queue q`` polls the activity
``stepflow-cells-q`` and runs each task with :class:`~stepflow.cells.CellRuntime`,
the code an inline run uses, against the execution's effect journal in the
coordination table itself (the worker reads and writes its lease records;
see the docs for why). The idempotency keys are those of an inline run: the
task's envelope carries the execution, state and attempt.

Fencing, on top of the API's (a stale token's SendTaskSuccess is refused):
before performing an effect that has no record yet, :class:`FencedJournal`
checks that the task's lease record still names this worker's delivery, so
a worker whose task went to another one stops before its next effect. Its
writes are conditional on absence: a record the new holder wrote first is
never overwritten (the late writer gets the stored one back).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from stepflow.activities.tokens import parse
from stepflow.cells.effects import IdempotencyKey
from stepflow.cells.journal import EffectRecord, LogJournal
from stepflow.cells.queues import CellQueueError, activity_name, task_body
from stepflow.cells.registry import CellModules
from stepflow.cells.runner import CellRuntime
from stepflow.runtime.clients import TaskClients
from stepflow.runtime.leases import LeaseLog
from stepflow.worker.context import TaskContext, TaskFailure

RECENT = 64
"""How many tasks' journals a :class:`CellHandler` keeps for inspection."""
INVALID_TASK = "StepFlow.Cell.InvalidTask"
LEASE_LOST = "StepFlow.Cell.LeaseLost"


class LeaseLostError(Exception):
    """The task was handed to another worker: this one must not perform another effect."""


@dataclass(slots=True)
class FencedJournal:
    """A :class:`~stepflow.cells.LogJournal` that refuses new effects once the lease is gone.

    ``delivery`` is the delivery the worker's token names; the task's lease
    record (id ``task_id`` in the execution's partition) names the current one.
    """

    log: LeaseLog
    execution_arn: str
    task_id: str
    delivery: int | None
    lost: threading.Event = field(default_factory=threading.Event)
    checks: int = 0
    """Lease reads made so far (one per effect performed, none per replayed one)."""

    def recorded(self, key: IdempotencyKey) -> EffectRecord | None:
        """The record of ``key``; with none, the lease is checked before the effect runs."""
        found = LogJournal(self.log).recorded(key)
        if found is None:
            self.check()
        return found

    def record(self, key: IdempotencyKey, record: EffectRecord) -> EffectRecord:
        """Store ``record`` unless one is stored (an effect that ran is recorded even late)."""
        return LogJournal(self.log).record(key, record)

    def check(self) -> None:
        """Raise :class:`LeaseLostError` unless the lease record still names our delivery."""
        self.checks += 1
        if self.lost.is_set():
            raise LeaseLostError("the task's lease was lost (refused heartbeat or release)")
        if self.delivery is None:
            return
        lease = self.log.lease(self.execution_arn, self.task_id)
        if lease is None or lease.delivery != self.delivery:
            self.lost.set()
            raise LeaseLostError(
                f"the task was handed to another worker (delivery "
                f"{getattr(lease, 'delivery', None)}, ours {self.delivery})"
            )


class CellHandler:
    """A worker :data:`~stepflow.worker.Handler` that runs cell tasks from a cell queue."""

    def __init__(
        self, modules: CellModules, log: LeaseLog, clients: TaskClients | None = None
    ) -> None:
        self.modules, self.log, self.clients = modules, log, clients
        self.journals: deque[FencedJournal] = deque(maxlen=RECENT)
        """The journals of the latest tasks run (tests read their lease checks)."""

    def __call__(self, data: Any, context: TaskContext) -> Any:
        """Run the cell task of ``data`` (the envelope); its output, or :class:`TaskFailure`."""
        try:
            body = task_body(data)
        except CellQueueError as exc:
            raise TaskFailure(INVALID_TASK, str(exc)) from None
        token = parse(context.token)
        if (token.execution_arn, token.task_id) != (body["execution_arn"], body["task_id"]):
            raise TaskFailure(INVALID_TASK, "the task's envelope names another task than its token")
        journal = FencedJournal(
            self.log, token.execution_arn, token.task_id, token.delivery, context.lost
        )
        self.journals.append(journal)
        runtime = CellRuntime(self.modules.cells, self.modules.handlers, journal, self.clients)
        outcome = runtime(body)
        if journal.lost.is_set():
            # Its result would be refused; the error names why in the worker's log.
            raise TaskFailure(LEASE_LOST, "the task's lease was lost while it ran")
        if outcome.ok:
            return outcome.output
        raise TaskFailure(outcome.error or "States.TaskFailed", outcome.cause or "")


def cell_activity(client: Any, queue: str) -> str:
    """The ARN of queue ``queue``'s activity, created if needed (CreateActivity is idempotent)."""
    return str(client.create_activity(name=activity_name(queue))["activityArn"])
