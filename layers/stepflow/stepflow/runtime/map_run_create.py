"""A map run's creation: its config, child inputs and head, written once.

:func:`create_run` applies a run's ``StartMapRun`` (or a ``CancelMapRun`` that came
first: a tombstone the start will find) for :class:`~stepflow.runtime.map_runs.MapRuns`.
The items are read (the spec's, or the ``ItemReader``'s), the config and child input
pages written (:mod:`stepflow.runtime.map_pages`), the Map Run API's pointer and the
run's head created; a redrive's start revives a tombstone in place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from stepflow.errors import StatesError, StatesErrorName
from stepflow.runtime.map_io import ItemReaderError, ReaderSpec
from stepflow.runtime.map_pages import child_inputs, write_config, write_pages
from stepflow.runtime.map_run_state import RunHead
from stepflow.runtime.messages import Message
from stepflow.runtime.ports import ConflictError, ExecutionAlreadyExistsError, ExecutionRecord

if TYPE_CHECKING:
    from stepflow.runtime.map_runs import MapRuns


def create_run(
    runs: MapRuns,
    key: str,
    start: Message | None,
    *,
    cancelled: Message | None,
    tombstone: ExecutionRecord | None = None,
) -> None:
    """Create the run ``key`` from its ``start`` (None: cancelled first, a tombstone)."""
    now = runs.clock()
    if start is None:  # cancelled before it started: a tombstone the start will find
        head = RunHead(key, key.rsplit("/", 1)[-1], key.split("#")[0], "", "", "", "", "", now)
        head.status, head.stop_date = "ABORTED", now
        if cancelled is not None:
            head.parent_redrive = int(cancelled.body.get("parent_redrive") or 0)
        _create_head(runs, key, head, ())
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
    write_config(runs.log, key, config, now)
    try:
        items = spec["items"] if spec.get("items") is not None else _read(runs, spec, head)
        children = child_inputs(runs.definitions(machine_arn), spec, items)
        head.children, head.items = write_pages(runs.log, key, children, now=now)
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
            runs.log.create(pointer, [])
    if tombstone is None:
        _create_head(runs, key, head, ())
        return
    revived = replace(tombstone, seq=tombstone.seq + 1, status=head.status, stop_date=None)
    with contextlib.suppress(ConflictError):  # another stepper revived it first
        runs.log.commit(replace(revived, state=head.to_json()), tombstone.seq, [])


def _read(runs: MapRuns, spec: dict[str, Any], head: RunHead) -> Iterator[Any]:
    reader = spec.get("reader")
    if not reader:
        raise StatesError(StatesErrorName.RUNTIME.value, "The Map has no items to run.")
    if runs.item_source is None:
        raise ItemReaderError("No ItemReader is configured on this runtime.")
    return runs.item_source.read(
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


def _create_head(runs: MapRuns, key: str, head: RunHead, outbox: tuple[Message, ...]) -> None:
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
        runs.log.create(record, [])
