"""The end of a map run: its results read back one at a time, into the output or a ResultSink.

Results are never kept in a head: a STANDARD child's is in its own record, an EXPRESS
item's in its result record; :func:`results` yields them in order, so a ResultWriter's
files are written from a stream (flat memory at any item count).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson

from stepflow.engine.context import iso
from stepflow.errors import StatesErrorName
from stepflow.runtime.map_express import express_record
from stepflow.runtime.map_io import ResultWriterError, WriterSpec
from stepflow.runtime.map_run_state import RunHead, child_execution_arn, run_key
from stepflow.runtime.ports import ExecutionRecord

if TYPE_CHECKING:
    from stepflow.runtime.map_runs import MapRuns


def run_output(runs: MapRuns, head: RunHead) -> Any:
    """The run's result: the results in order, or where the ResultWriter put them."""
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
    """Each child's result, read from its own record, one at a time, in order."""
    key = run_key(head.parent_arn, head.run_id)
    for position in range(head.children):
        arn = child_execution_arn(head.map_run_arn, position)
        if head.execution_type == "EXPRESS":
            record = express_record(runs, key, position)
            arn = arn.replace(":execution:", ":express:", 1)
        else:
            record = runs.log.get(arn)
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
