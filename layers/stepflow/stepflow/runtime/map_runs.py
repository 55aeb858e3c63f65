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
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from stepflow.asl import StateMachine
from stepflow.engine import (
    MapRunFinished,
    Redrive,
    Start,
    new_execution,
)
from stepflow.errors import StatesError, StatesErrorName
from stepflow.runtime.map_coalesce import BUNDLE_DELAY, bundle, reports_only, too_soon, unbundled
from stepflow.runtime.map_express import BATCH_MARK, NOT_STARTED, express_batch, fill_express
from stepflow.runtime.map_inline import (
    as_iteration,
    cancelled,
    child_attributes,
    inline_failure,
    report,
)
from stepflow.runtime.map_io import (
    ItemReaderError,
    ItemSource,
    ReaderSpec,
    ResultSink,
)
from stepflow.runtime.map_pages import PageCache, child_inputs, write_config, write_pages
from stepflow.runtime.map_results import FinishingElsewhereError, run_output
from stepflow.runtime.map_run_state import (
    START_PER_COMMIT,
    UNSUCCESSFUL,
    RunHead,
    child_execution_arn,
)
from stepflow.runtime.messages import Message, encode_event
from stepflow.runtime.outbox import store_state
from stepflow.runtime.outcome import TaskInvoker
from stepflow.runtime.ports import (
    ConflictError,
    CoordinationLog,
    ExecutionAlreadyExistsError,
    ExecutionRecord,
)
from stepflow.runtime.repair import OutboxSender

THRESHOLD_CAUSE = "The specified tolerated failure threshold was exceeded"
CHECKS_PER_COMMIT = 500
"""Redrive: children whose record one commit reads to find the unsuccessful ones."""


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
            self._create(key, start, cancelled=cancels[0] if cancels else None)
        elif start is not None and _revives(record, start):
            self._create(key, start, cancelled=None, tombstone=record)
        self._apply(key, bodies)

    def child_event(
        self, message: Message, runs: dict[str, ExecutionRecord | None] | None = None
    ) -> Start | Redrive | None:
        """Create the child execution of a ``child`` message of a run (once); its event.

        None if the run ended (stopped, failed) before the child started: the child is
        not started, and the run hears it never will be (``NOT_STARTED``). ``runs``
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
        if run is not None and run.state.get("status") != "RUNNING":
            body = {"type": "ChildFinished", "child_id": str(position), "status": NOT_STARTED}
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

    # --- creation ----------------------------------------------------------------------

    def _create(
        self,
        key: str,
        start: Message | None,
        *,
        cancelled: Message | None,
        tombstone: ExecutionRecord | None = None,
    ) -> None:
        now = self.clock()
        if start is None:  # cancelled before it started: a tombstone the start will find
            head = RunHead(key, key.rsplit("/", 1)[-1], key.split("#")[0], "", "", "", "", "", now)
            head.status, head.stop_date = "ABORTED", now
            if cancelled is not None:
                head.parent_redrive = int(cancelled.body.get("parent_redrive") or 0)
            self._create_head(key, head, ())
            return
        spec = dict(start.body["spec"])
        machine_arn = str(start.body["state_machine_arn"])
        head = RunHead(
            map_run_arn=str(spec["map_run_arn"]),
            run_id=str(spec["run_id"]),
            parent_arn=str(start.body.get("parent_arn") or key.split("#")[0]),
            state_machine_arn=machine_arn,
            machine=str(spec["machine"]),
            state_name=str(spec.get("state_name") or ""),
            execution_type=str(spec.get("execution_type") or "STANDARD"),
            start_message=start.id,
            start_date=now,
            max_concurrency=int(spec.get("max_concurrency") or 0),
            tolerated_count=spec.get("tolerated_count"),
            tolerated_percentage=spec.get("tolerated_percentage"),
            writer=spec.get("writer"),
            role_arn=str(spec.get("role_arn") or ""),
            execution_role=str(spec.get("execution_role") or ""),
            parent_redrive=int(start.body.get("parent_redrive") or 0),
            inline=bool(spec.get("inline")),
        )
        config = {k: v for k, v in spec.items() if k != "items"}
        config["state_machine_arn"] = machine_arn
        write_config(self.log, key, config, now)
        try:
            items = spec["items"] if spec.get("items") is not None else self._read(spec, head)
            children = child_inputs(self.definitions(machine_arn), spec, items)
            head.children, head.items = write_pages(self.log, key, children, now=now)
        except ItemReaderError as exc:
            head.error, head.cause = StatesErrorName.ITEM_READER_FAILED.value, exc.cause
        except StatesError as exc:
            head.error, head.cause = exc.error, exc.cause
        pointer = ExecutionRecord(
            execution_arn=head.map_run_arn,
            state_machine_arn="",
            name=head.run_id,
            input=None,
            status="MAP_RUN",
            seq=0,
            state={"run_key": key},
            start_date=now,
            stop_date=now,  # expires with the log's retention
            attributes={"listed_under": ""},
        )
        if not head.inline:  # an inline Map's run is no Map Run API entry
            with contextlib.suppress(ExecutionAlreadyExistsError):
                self.log.create(pointer, [])
        if tombstone is None:
            self._create_head(key, head, ())
            return
        revived = replace(tombstone, seq=tombstone.seq + 1, status=head.status, stop_date=None)
        with contextlib.suppress(ConflictError):  # another stepper revived it first
            self.log.commit(replace(revived, state=head.to_json()), tombstone.seq, [])

    def _read(self, spec: dict[str, Any], head: RunHead) -> Iterator[Any]:
        reader = spec.get("reader")
        if not reader:
            raise StatesError(StatesErrorName.RUNTIME.value, "The Map has no items to run.")
        if self.item_source is None:
            raise ItemReaderError("No ItemReader is configured on this runtime.")
        return self.item_source.read(
            ReaderSpec(
                resource=str(reader["resource"]),
                parameters=dict(reader.get("parameters") or {}),
                reader_config=dict(reader.get("reader_config") or {}),
                max_items=reader.get("max_items"),
                role_arn=head.role_arn,
                execution_role=head.execution_role,
                execution_arn=head.parent_arn,
            )
        )

    def _create_head(self, key: str, head: RunHead, outbox: tuple[Message, ...]) -> None:
        record = ExecutionRecord(
            execution_arn=key,
            state_machine_arn=head.state_machine_arn,
            name=head.run_id,
            input=None,
            status="RUNNING" if head.status == "RUNNING" else head.status,
            seq=0,
            state=head.to_json(),
            start_date=head.start_date,
            attributes={"listed_under": ""},
        )
        with contextlib.suppress(ExecutionAlreadyExistsError):
            self.log.create(record, [])

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
                self._event(key, head, message_id, body, now, outbox, progress)
            try:
                self._progress(key, head, now, outbox, progress)
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

    def _event(
        self,
        key: str,
        head: RunHead,
        message_id: str,
        body: dict[str, Any],
        now: float,
        outbox: list[Message],
        progress: list[list[Any]],
    ) -> None:
        kind = body.get("type")
        reports = [(body.get("child_id"), body.get("status"))] if kind == "ChildFinished" else []
        if kind == "MapRunBatchDone":
            reports = [(position, status) for position, status in body.get("done") or []]
        for child_id, status in reports:
            if status == NOT_STARTED:
                self._not_started(key, head, str(child_id), outbox)
                continue
            if kind == "ChildFinished" and (
                str(child_id) in head.stale or str(child_id) in head.restarted
            ):
                self._redriven_report(key, head, str(child_id), outbox, progress)
                continue
            count = head.running.pop(str(child_id), None)
            if count is not None and status in head.done:  # else a duplicate or stale report
                head.done[str(status)] += 1
                head.done_items[str(status)] += count
                if head.inline and head.status == "RUNNING":  # else reported Aborted
                    progress.append(
                        ["Succeeded" if status == "SUCCEEDED" else "Failed", int(str(child_id))]
                    )
                    if status != "SUCCEEDED":
                        inline_failure(head, body)
        if reports:
            return
        if kind == "CancelMapRun":
            if head.status == "RUNNING":
                head.status, head.stop_date, head.stopping = "ABORTED", now, True
                cancelled(head)
        elif kind == "StartMapRun":
            tombstone = not head.state_machine_arn  # cancelled before it started
            if message_id != head.start_message and head.status in UNSUCCESSFUL and not tombstone:
                self._redrive(head, message_id, now)
                head.parent_redrive = int(body.get("parent_redrive") or head.parent_redrive)
        elif kind == "UpdateMapRun" and head.status == "RUNNING":  # else it ended first
            if "max_concurrency" in body:
                head.max_concurrency = int(body["max_concurrency"])
            if "tolerated_count" in body:
                head.tolerated_count = int(body["tolerated_count"])
            if "tolerated_percentage" in body:
                head.tolerated_percentage = float(body["tolerated_percentage"])

    def _not_started(self, key: str, head: RunHead, position: str, outbox: list[Message]) -> None:
        """A child (or EXPRESS batch item) that never started because its run had ended.

        It leaves the window uncounted; if a redrive runs the run again meanwhile, the
        position (stale: it was in the window) starts now.
        """
        head.restarted.pop(position, None)
        stale = position in head.stale
        if stale:
            head.stale.remove(position)
        count = head.running.pop(position, None)
        if count is None or not stale or head.status != "RUNNING":
            return
        if head.execution_type == "EXPRESS":
            return  # EXPRESS positions are never stale (see _redrive)
        arn = child_execution_arn(head.map_run_arn, int(position))
        child = self.log.get(arn)
        head.running[position] = count
        body: dict[str, Any] = {"map_run": key, "position": int(position)}
        if child is not None:
            body["redrive"] = True
            head.restarted[position] = int(child.state.get("redrive_count") or 0)
        message_id = f"{key}#child/{position}#{head.redrive_count}"
        outbox.append(Message(arn, message_id, "child", body))

    def _redriven_report(
        self,
        key: str,
        head: RunHead,
        position: str,
        outbox: list[Message],
        progress: list[list[Any]],
    ) -> None:
        """A report on a child a redrive concerns, told by the child's record, not the report.

        A child still running from an earlier run (``stale``) counts if it succeeded and
        runs again otherwise (keeping its place in the window); a child run again
        (``restarted``) counts once its record shows a later end than the one it had.
        """
        arn = child_execution_arn(head.map_run_arn, int(position))
        child = self.log.get(arn)
        if child is None or child.status == "RUNNING":
            return  # a late or duplicated report: the child runs
        generation = int(child.state.get("redrive_count") or 0)
        if position in head.restarted and generation <= head.restarted[position]:
            return  # the end it had before it was run again
        head.restarted.pop(position, None)
        stale = position in head.stale
        if stale:
            head.stale.remove(position)
        count = head.running.pop(position, None)
        if count is None or child.status not in head.done:
            return
        if not stale or child.status == "SUCCEEDED":
            head.done[child.status] += 1
            head.done_items[child.status] += count
            if head.inline and head.status == "RUNNING":
                outcome = "Succeeded" if child.status == "SUCCEEDED" else "Failed"
                progress.append([outcome, int(position)])
                if child.status != "SUCCEEDED":
                    error, cause = child.state.get("error"), child.state.get("cause")
                    inline_failure(head, {"status": child.status, "error": error, "cause": cause})
        elif head.status == "RUNNING":
            head.running[position] = count
            head.restarted[position] = generation
            body = {"map_run": key, "position": int(position), "redrive": True}
            message_id = f"{key}#child/{position}#{head.redrive_count}"
            outbox.append(Message(arn, message_id, "child", body))

    def _redrive(self, head: RunHead, message_id: str, now: float) -> None:
        """Run the unsuccessful and never-started children again (AWS's redrive rule)."""
        for status in UNSUCCESSFUL:
            head.done[status] = 0
            head.done_items[status] = 0
        head.status, head.stop_date, head.error, head.cause = "RUNNING", None, None, None
        head.stopping = False
        head.start_message = message_id
        head.redrive_count += 1
        head.redrive_date = now
        head.pending = []  # an inline run's events of the attempt before, never reported
        head.check_below = head.next
        head.next = 0
        if head.execution_type != "EXPRESS":  # an EXPRESS batch is never stopped
            head.stale = sorted(set(head.stale) | set(head.running), key=int)

    def _progress(
        self,
        key: str,
        head: RunHead,
        now: float,
        outbox: list[Message],
        progress: list[list[Any]],
    ) -> None:
        """Stop on too many failures, fill the window, finish when all ended."""
        if head.status == "RUNNING" and head.error is None and head.exceeds_tolerance():
            head.error = StatesErrorName.EXCEED_TOLERATED_FAILURE_THRESHOLD.value
            head.cause = THRESHOLD_CAUSE
        if head.status == "RUNNING" and head.error is not None:
            head.status, head.stop_date, head.stopping = "FAILED", now, True
            outbox.append(self._finished(key, head, None))
        if head.stopping:
            # An EXPRESS batch cannot be stopped: its late report is counted, nothing more.
            running = [] if head.execution_type == "EXPRESS" else head.running
            for position in sorted(running, key=int):
                if head.inline and head.status == "FAILED":
                    progress.append(["Aborted", int(position)])
                arn = child_execution_arn(head.map_run_arn, int(position))
                outbox.append(Message(arn, f"{key}#stop/{position}", "event", {"type": "Stop"}))
            head.stopping = False
            return
        if head.status != "RUNNING":
            return
        self._fill(key, head, outbox, progress)
        if not head.running and head.next >= head.children:
            head.status, head.stop_date = "SUCCEEDED", now
            outbox.append(self._finished(key, head, run_output(self, head)))

    def _fill(
        self, key: str, head: RunHead, outbox: list[Message], progress: list[list[Any]]
    ) -> None:
        if head.execution_type == "EXPRESS":
            fill_express(self, key, head, outbox)
            return
        started = checked = 0
        while (
            head.next < head.children
            and len(head.running) < head.window()
            and started < START_PER_COMMIT
            and checked < CHECKS_PER_COMMIT
        ):
            position = head.next
            if str(position) in head.running:  # redriven while its stop is on the way
                head.next += 1
                continue
            arn = child_execution_arn(head.map_run_arn, position)
            body: dict[str, Any] = {"map_run": key, "position": position}
            if position < head.check_below:  # redrive: only unsuccessful or unstarted ones
                checked += 1
                child = self.log.get(arn)
                if child is not None and child.status == "SUCCEEDED":
                    head.next += 1
                    continue
                body["redrive"] = child is not None
                if child is not None:
                    head.restarted[str(position)] = int(child.state.get("redrive_count") or 0)
            count = self.pages.child(key, position).count
            head.running[str(position)] = count
            message_id = f"{key}#child/{position}#{head.redrive_count}"
            outbox.append(Message(arn, message_id, "child", body))
            head.next += 1
            started += 1
            if head.inline:
                progress.append(["Started", position])
        if head.next < head.children and len(head.running) < head.window():
            more = f"{key}#fill/{head.next}#{head.redrive_count}"
            outbox.append(Message(key, more, "event", {"type": "MapRunFill"}))

    def _finished(self, key: str, head: RunHead, output: Any) -> Message:
        event = MapRunFinished(
            head.run_id,
            head.status,  # type: ignore[arg-type]
            output,
            head.error,
            head.cause,
            parent_redrive=head.parent_redrive,
        )
        message_id = f"{key}#finished#{head.redrive_count}"
        return Message(head.parent_arn, message_id, "event", encode_event(event))


def _revives(record: ExecutionRecord, start: Message) -> bool:
    """A redrive's start of a run whose parent was stopped before the run started."""
    head = record.state
    tombstone = not head.get("state_machine_arn")
    later = int(start.body.get("parent_redrive") or 0) > int(head.get("parent_redrive") or 0)
    return tombstone and later
