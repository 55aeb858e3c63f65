"""The map run coordinator: a distributed Map's children, window, counters and end.

``StartMapRun`` (a parent's outbox message) creates the run once: its config and
child inputs are written once (:mod:`stepflow.runtime.map_pages`), its head is a
small record (:class:`~stepflow.runtime.map_run_state.RunHead`) keyed by the
parent and run id. Every delivery for the run (its start, the ``ChildFinished`` of
its children, a cancel, a refill of the window, an update, a repair) is applied by
:meth:`MapRuns.handle` on the latest head and committed as ONE conditional write,
with the messages it must send in the head's outbox (sent after the commit, re-sent
by the next delivery if the sender crashed), as for executions. A batch of child
completions therefore costs one head write; the parent hears once, at the end
(``MapRunFinished``). Child results are read back from the children's own records,
one at a time, only at the end.

This module holds the deliveries' entry points and the commit; the work is done by
:mod:`stepflow.runtime.map_run_create` (a run's creation),
:mod:`stepflow.runtime.map_run_events` (each delivery on the head) and
:mod:`stepflow.runtime.map_run_window` (failure threshold, window fill, end).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from stepflow.asl import StateMachine
from stepflow.engine import Redrive, Start, new_execution
from stepflow.runtime.map_coalesce import BUNDLE_DELAY, bundle, reports_only, too_soon, unbundled
from stepflow.runtime.map_express import BATCH_MARK, NOT_STARTED, express_batch
from stepflow.runtime.map_inline import as_iteration, child_attributes, report
from stepflow.runtime.map_io import ItemSource, ResultSink
from stepflow.runtime.map_pages import PageCache
from stepflow.runtime.map_results import FinishingElsewhereError
from stepflow.runtime.map_run_create import create_run
from stepflow.runtime.map_run_events import apply_event
from stepflow.runtime.map_run_state import RunHead
from stepflow.runtime.map_run_window import CHECKS_PER_COMMIT as CHECKS_PER_COMMIT
from stepflow.runtime.map_run_window import THRESHOLD_CAUSE as THRESHOLD_CAUSE
from stepflow.runtime.map_run_window import advance
from stepflow.runtime.messages import Message
from stepflow.runtime.outbox import store_state
from stepflow.runtime.outcome import TaskInvoker
from stepflow.runtime.ports import (
    ConflictError,
    CoordinationLog,
    ExecutionAlreadyExistsError,
    ExecutionRecord,
)
from stepflow.runtime.repair import OutboxSender


class MapRunNotFoundError(KeyError):
    """No map run has that ARN."""


class MapRuns:
    """Applies the deliveries of map runs to their heads (see the module docstring)."""

    def __init__(
        self,
        *,
        log: CoordinationLog,
        sender: OutboxSender,
        clock: Callable[[], float],
        definitions: Callable[[str], StateMachine],
        item_source: ItemSource | None = None,
        result_sink: ResultSink | None = None,
        pages: PageCache | None = None,
        max_conflicts: int = 50,
        invoker: TaskInvoker | None = None,
        owner: str = "map-runs",
    ) -> None:
        self.log = log
        self.sender = sender
        self.clock = clock
        self.definitions = definitions
        self.item_source = item_source
        self.result_sink = result_sink
        self.pages = pages or PageCache(log)
        self.max_conflicts = max_conflicts
        self.invoker = invoker
        self.owner = owner

    # --- deliveries ------------------------------------------------------------------

    def handle(self, key: str, messages: Sequence[Message]) -> None:
        """Apply a group of deliveries for the run ``key`` as one commit."""
        if BATCH_MARK in key:
            for message in messages:
                express_batch(self, message)
            return
        bodies = [(m.id, m.body) for m in messages if m.kind == "event"]
        record = self.log.get(key)
        start = next((m for m in messages if m.body.get("type") == "StartMapRun"), None)
        if record is None:
            cancels = [m for m in messages if m.body.get("type") == "CancelMapRun"]
            if start is None and not cancels:
                return  # a child's report for a run that never existed: nothing to do
            create_run(self, key, start, cancelled=cancels[0] if cancels else None)
        elif start is not None and _revives(record, start):
            create_run(self, key, start, cancelled=None, tombstone=record)
        self._apply(key, bodies)

    def child_event(
        self, message: Message, runs: dict[str, ExecutionRecord | None] | None = None
    ) -> Start | Redrive | None:
        """Create the child execution of a ``child`` message of a run (once); its event.

        None if the run ended (stopped, failed) before the child started, or the message
        is of the run's attempt before a redrive: the child is not started (or run
        again), and the run hears it never will be (``NOT_STARTED``). ``runs``
        keeps the run heads read for one batch of deliveries: its child messages
        are checked against one read of their run's head, as if they came first.
        """
        prepared = self.prepare_child(message, runs)
        if prepared is None:
            return None
        record, event = prepared
        with contextlib.suppress(ExecutionAlreadyExistsError):
            self.log.create(record, [])
        return event

    def prepare_child(
        self, message: Message, runs: dict[str, ExecutionRecord | None] | None = None
    ) -> tuple[ExecutionRecord, Start | Redrive] | None:
        """The record (at ``seq`` 0, not stored) and event of a ``child`` message's child.

        None and ``runs`` as for :meth:`child_event`. The stepper stores a new child with its first
        decision (one write, see :func:`stepflow.runtime.child_start.first_commit`).
        """
        key, position = str(message.body["map_run"]), int(message.body["position"])
        if runs is None:
            run = self.log.get(key)
        elif key in runs:
            run = runs[key]
        else:
            run = runs[key] = self.log.get(key)
        if run is not None and not _current(run.state, message.body):
            body = {"type": "ChildFinished", "child_id": str(position), "status": NOT_STARTED}
            if "attempt" in message.body:
                body["attempt"] = message.body["attempt"]
            self.sender.bus.send(Message(key, f"{message.id}#not-started", "event", body))
            return None
        config = self.pages.config(key)
        child = self.pages.child(key, position)
        arn = message.execution_arn
        parts = arn.split(":")
        state = new_execution(
            name=parts[-1],
            input=child.input,
            now=self.clock(),
            state_machine_name=parts[6],
            region=parts[3],
            account=parts[4],
            role_arn=str(config.get("execution_role") or "") or None,
            seed=secrets.randbits(63),
            token_key=secrets.token_hex(16),
        )
        state.parent = {"arn": key, "child_id": str(position), "root_arn": arn, "record_arn": arn}
        if config.get("inline"):
            as_iteration(state, config, int((run.state if run else {}).get("parent_redrive") or 0))
        state.machine = str(config["machine"])
        state.root_input = child.input
        state.outer_variables = dict((config.get("scope") or {}).get("variables") or {})
        record = ExecutionRecord(
            execution_arn=arn,
            state_machine_arn=str(config["state_machine_arn"]),
            name=parts[-1],
            input=child.input,
            status="RUNNING",
            seq=0,
            state=store_state(state),
            start_date=self.clock(),
            attributes=child_attributes(config),
        )
        return record, Redrive() if message.body.get("redrive") else Start()

    def ended_since(self, message: Message, checked: dict[str, ExecutionRecord | None]) -> bool:
        """Whether the run ended since ``message``'s child was created.

        A ``child`` message's child is created on a read of its run from before the
        create: the run may have failed in between (its Stop found no child). Read after
        the create, a run that ended means the child must not run its first state.
        ``checked`` keeps the runs read after the creates of one batch (read here if
        absent).
        """
        return self.run_ended(str(message.body["map_run"]), checked)

    def run_ended(self, key: str, checked: dict[str, ExecutionRecord | None]) -> bool:
        """Whether the run with head ``key`` ended (read unless in ``checked``)."""
        if key not in checked:
            checked[key] = self.log.get(key)
        run = checked[key]
        # Not "the message is of the run's current attempt": a redriven run settles a
        # child of its attempt before by the child's record (map_run_window._settle_late);
        # aborted here, it was counted ABORTED against the redriven attempt.
        return run is not None and run.state.get("status") != "RUNNING"

    def update(
        self,
        map_run_arn: str,
        *,
        max_concurrency: int | None = None,
        tolerated_count: int | None = None,
        tolerated_percentage: float | None = None,
    ) -> None:
        """UpdateMapRun: new limits that the running run applies at once."""
        key = self.key_of(map_run_arn)
        body: dict[str, Any] = {"type": "UpdateMapRun"}
        if max_concurrency is not None:
            body["max_concurrency"] = max_concurrency
        if tolerated_count is not None:
            body["tolerated_count"] = tolerated_count
        if tolerated_percentage is not None:
            body["tolerated_percentage"] = tolerated_percentage
        self._apply(key, [(f"{key}#update", body)])

    def key_of(self, map_run_arn: str) -> str:
        """The head key of the run with AWS ARN ``map_run_arn``."""
        pointer = self.log.get(map_run_arn)
        if pointer is None or "run_key" not in pointer.state:
            raise MapRunNotFoundError(map_run_arn)
        return str(pointer.state["run_key"])

    def head(self, map_run_arn: str) -> RunHead:
        """The run's head, by its AWS ARN."""
        record = self.log.get(self.key_of(map_run_arn))
        if record is None:
            raise MapRunNotFoundError(map_run_arn)
        return RunHead.from_json(record.state)

    # --- applying deliveries -----------------------------------------------------------

    def _apply(self, key: str, bodies: Sequence[tuple[str, dict[str, Any]]]) -> None:
        repair_sent = False
        for _ in range(self.max_conflicts):
            record = self.log.get(key)
            if record is None:
                return
            if record.outbox:
                self.sender.flush(record, inline=False)
            now = self.clock()
            if reports_only(bodies) and too_soon(record.state, now):  # see map_coalesce
                deferred = bundle(key, bodies)
                if deferred is not None:
                    self.sender.bus.send(deferred, BUNDLE_DELAY)
                    return
            before = record.state
            head = RunHead.from_json(dict(record.state))
            outbox: list[Message] = []
            progress: list[list[Any]] = []
            for message_id, body in unbundled(bodies):
                apply_event(self, key, head, message_id, body, now, outbox, progress)
            try:
                advance(self, key, head, now, outbox, progress)
            except FinishingElsewhereError:
                return  # another delivery is computing the run's end and commits it
            if head.inline:
                report(head, progress, outbox)
            state = head.to_json()
            if state == before and not outbox:
                return
            head.written_at = now
            state = head.to_json()
            seq = record.seq + 1
            for i, message in enumerate(outbox):
                if not message.id:
                    outbox[i] = replace(message, id=f"{key}#{seq}#{i}")
            new = replace(
                record,
                seq=seq,
                status=head.status,
                state=state,
                outbox=tuple(outbox),
                stop_date=head.stop_date,
            )
            if outbox and not repair_sent:
                self.sender.send_repair(key)
                repair_sent = True
            try:
                self.log.commit(new, record.seq, [])
            except ConflictError:
                continue
            if outbox:
                self.sender.flush(new, inline=False)
            return
        raise ConflictError(key, -1)


def _revives(record: ExecutionRecord, start: Message) -> bool:
    """A redrive's start of a run whose parent was stopped before the run started."""
    head = record.state
    tombstone = not head.get("state_machine_arn")
    later = int(start.body.get("parent_redrive") or 0) > int(head.get("parent_redrive") or 0)
    return tombstone and later


def _current(run: dict[str, Any], body: dict[str, Any]) -> bool:
    """Whether a ``child`` message may start (or run again) its child.

    Its run must run, and the message be of the run's current attempt: a start from
    before a redrive, delivered late, would run the child again behind the redriven
    run's back (the redrive's refill, or the NOT_STARTED answer for a position still
    running from before, decides).
    """
    if run.get("status") != "RUNNING":
        return False
    attempt = body.get("attempt")
    return attempt is None or int(attempt) >= int(run.get("redrive_count") or 0)
