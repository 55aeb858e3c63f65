"""The end of a map run: its results read back in order, into the output or a ResultSink.

Results are never kept in a head: a STANDARD child's is in its own record, an EXPRESS
item's in its result record; :func:`results` reads them :data:`READ_CHUNK` at a time
(one BatchGetItem request on DynamoDB) and yields them in order, so a ResultWriter's
files are written from a stream (memory bounded by a chunk at any item count).

The end is computed once per run (and redrive): under a lease (``finish#<redrive
count>`` on the run's key), whose record keeps what a ResultWriter wrote, so a
duplicate delivery of the last report, or a retry of a commit that lost a race, does
not read every result back and write the files again. A delivery that finds another
computing the end meanwhile raises :class:`FinishingElsewhereError`: it commits
nothing, the other commits the end (if that one dies, its own message comes back).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson

from stepflow.engine.context import iso
from stepflow.errors import StatesErrorName
from stepflow.runtime import leases
from stepflow.runtime.map_io import ResultWriterError, WriterSpec
from stepflow.runtime.map_run_state import RunHead, child_execution_arn, run_key
from stepflow.runtime.ports import ExecutionRecord

if TYPE_CHECKING:
    from stepflow.runtime.map_runs import MapRuns

READ_CHUNK = 100
"""Results read per request (DynamoDB's BatchGetItem limit)."""
FINISH_SECONDS = 120.0
"""How long a delivery computing a run's end holds it before another may take over."""


class FinishingElsewhereError(Exception):
    """Another delivery is computing this run's end right now: commit nothing."""


def run_output(runs: MapRuns, head: RunHead) -> Any:
    """The run's result: the results in order, or where the ResultWriter put them.

    Sets the head's error (``States.ResultWriterFailed``) if the writer fails. Raises
    :class:`FinishingElsewhereError` if another delivery is computing it.
    """
    key = run_key(head.parent_arn, head.run_id)
    task = f"finish#{head.redrive_count}"
    now = runs.clock()
    claim = leases.claim(runs.log, key, task, runs.owner, now, FINISH_SECONDS)
    if claim.status == "busy":
        raise FinishingElsewhereError(key)
    if claim.status == "done" and claim.result and claim.result.get("end") is not None:
        return _ended(head, claim.result["end"])
    held = claim.lease if claim.status == "acquired" else None
    try:
        output = _output(runs, head)
    except BaseException:
        if held is not None:  # the next delivery may compute it at once
            with contextlib.suppress(Exception):
                runs.log.put_lease(leases.release(held, now))
        raise
    if held is not None:
        # Only a ResultWriter's end is kept (small); an output in full is read again.
        end = _end_of(head, output) if head.writer is not None else None
        leases.finish(runs.log, held, {"end": end})
    return output


def _end_of(head: RunHead, output: Any) -> dict[str, Any]:
    """What computing the end changed: the output and the head's fields it sets."""
    return {
        "output": output,
        "status": head.status,
        "error": head.error,
        "cause": head.cause,
        "results_written": head.results_written,
    }


def _ended(head: RunHead, end: dict[str, Any]) -> Any:
    """Apply an end computed before (:func:`_end_of`) to ``head``; its output."""
    head.status = str(end["status"])
    head.error, head.cause = end.get("error"), end.get("cause")
    head.results_written = int(end.get("results_written") or 0)
    return end.get("output")


def _output(runs: MapRuns, head: RunHead) -> Any:
    if head.writer is None:
        return [entry["value"] for entry in results(runs, head)]
    if runs.result_sink is None:
        head.error = StatesErrorName.RESULT_WRITER_FAILED.value
        head.cause = "No ResultWriter is configured on this runtime."
        head.status = "FAILED"
        return None
    spec = WriterSpec(
        resource=str(head.writer["resource"]),
        parameters=dict(head.writer.get("parameters") or {}),
        writer_config=dict(head.writer.get("writer_config") or {}),
        role_arn=head.role_arn,
        execution_role=head.execution_role,
        execution_arn=head.parent_arn,
        map_run_arn=head.map_run_arn,
    )
    try:
        details = runs.result_sink.write(
            spec, head.run_id, (entry["aws"] for entry in results(runs, head))
        )
    except ResultWriterError as exc:
        head.error, head.cause = StatesErrorName.RESULT_WRITER_FAILED.value, exc.cause
        head.status = "FAILED"
        return None
    head.results_written = head.children
    return {"MapRunArn": head.map_run_arn, "ResultWriterDetails": details}


def results(runs: MapRuns, head: RunHead) -> Iterator[dict[str, Any]]:
    """Each child's result, read from its own record, in order, :data:`READ_CHUNK` a request."""
    key = run_key(head.parent_arn, head.run_id)
    express = head.execution_type == "EXPRESS"
    for start in range(0, head.children, READ_CHUNK):
        positions = range(start, min(start + READ_CHUNK, head.children))
        arns = [child_execution_arn(head.map_run_arn, position) for position in positions]
        names = [f"{key}#xr/{position}" for position in positions] if express else arns
        records = runs.log.get_many(names)
        for position, arn, record in zip(positions, arns, records, strict=True):
            if express:
                arn = arn.replace(":execution:", ":express:", 1)
                if record is not None:  # its input is in the run's pages
                    record = replace(record, input=runs.pages.child(key, position).input)
            yield child_result(record, arn, head)


def child_result(record: ExecutionRecord | None, arn: str, head: RunHead) -> dict[str, Any]:
    """A child's entry in the results array (``value``) and in the ResultWriter's files."""
    state = record.state if record is not None else {}
    status = record.status if record is not None else "PENDING"
    output, error, cause = state.get("output"), state.get("error"), state.get("cause")
    value = output if status == "SUCCEEDED" else {"Error": error, "Cause": cause}
    aws: dict[str, Any] = {
        "ExecutionArn": arn,
        "Name": arn.rsplit(":", 1)[-1],
        "StateMachineArn": arn.rsplit(":", 1)[0].replace(":execution:", ":stateMachine:", 1),
        "Status": status,
        "Input": orjson.dumps(record.input).decode() if record is not None else "null",
        "InputDetails": {"Included": True},
        "RedriveCount": head.redrive_count,
        "RedriveStatus": "NOT_REDRIVABLE",
    }
    if record is not None:
        aws["StartDate"] = iso(record.start_date)
        if record.stop_date is not None:
            aws["StopDate"] = iso(record.stop_date)
    if status == "SUCCEEDED":
        aws["Output"] = orjson.dumps(output).decode()
        aws["OutputDetails"] = {"Included": True}
    elif error is not None or cause is not None:
        aws["Error"], aws["Cause"] = error, cause
    return {"value": value, "aws": aws}
