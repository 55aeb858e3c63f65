"""A DISTRIBUTED Map: its run is a map run the runtime carries out (``StartMapRun``).

The engine evaluates everything the run needs on the Map's input (items or the
ItemReader's parameters, ItemBatcher, ResultWriter, MaxConcurrency, tolerated
failures), records ``MapStateStarted`` and ``MapRunStarted`` and asks for the run;
the frame then waits until ``MapRunFinished`` for its current run, and applies
ResultSelector/ResultPath, Retry and Catch like any state. A retry starts a new
run; an abort cancels the run once (``CancelMapRun``). The contract with the
runtime is docs/distributed-map.md (spec fields) and
:mod:`stepflow.engine.map_items` (the children's inputs).
"""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING, Any

from stepflow.asl.states.base import MISSING
from stepflow.asl.states.map import ItemBatcherDef, ItemReaderDef, MapState, ResultWriterDef
from stepflow.data.jsonpath import PathNotFoundError
from stepflow.engine import dataflow, map_limits
from stepflow.engine.model import CancelMapRun, Frame, MapRunFinished, StartMapRun
from stepflow.engine.pipeline import build, select
from stepflow.errors import StatesError, StatesErrorName

if TYPE_CHECKING:
    from stepflow.engine.step_context import EvalContext, StepContext

MAX_ITEMS = 100_000_000
"""Step Functions reads at most this many items (a larger MaxItems reads them all)."""

ITEM_READER_FAILED = "States.ItemReaderFailed"


def run_map(d: StepContext, frame: Frame, node: MapState) -> None:
    """Start (or restart, on retry or redrive) a distributed Map: ask for its map run."""
    effective = dataflow.effective_input(d, frame, node)
    frame.effective = effective
    items = None if node.item_reader is not None else _items(d, frame, node, effective)
    reader, max_items = _reader(d, frame, node, node.item_reader, effective)
    batcher = _batcher(d, frame, node, node.item_batcher, effective)
    writer = _writer(d, frame, node, node.result_writer, effective)
    concurrency = map_limits.number(
        d,
        frame,
        node,
        node.max_concurrency,
        node.max_concurrency_path,
        "MaxConcurrency",
        integer=True,
    )
    redriven = redriven_run(d, frame)
    if redriven is None:
        length = len(items) if items is not None else 0
        d.emit(frame, "MapStateStarted", "mapStateStartedEventDetails", {"length": length})
    count, pct = map_limits.tolerance(d, frame, node)
    run_id = redriven or new_run_id(d)
    arn = map_run_arn(d, node, run_id)
    if redriven is None:
        d.emit(frame, "MapRunStarted", "mapRunStartedEventDetails", {"mapRunArn": arn})
    else:
        details = {"mapRunArn": arn, "redriveCount": d.state.redrive_count}
        d.emit(frame, "MapRunRedriven", "mapRunRedrivenEventDetails", details)
    if isinstance(max_items, int) and max_items < 0:  # AWS fails the run it started
        _run_failed(d, frame, node, ITEM_READER_FAILED, "field MaxItems must be positive")
        return
    if reader is not None:
        reader["max_items"] = max_items
    spec: dict[str, Any] = {
        "map_run_arn": arn,
        "run_id": run_id,
        "execution_arn": d.state.execution_arn,
        "state_name": node.name,
        "parent_machine": frame.machine,
        "machine": node.item_processor.id,
        "execution_type": node.execution_type,
        "items": items,
        "reader": reader,
        "batcher": batcher,
        "scope": {
            "input": effective,
            "context": d.context(frame),
            "variables": dict(dataflow.variables(d, frame)),
        },
        "max_concurrency": int(concurrency or 0),
        "tolerated_count": None if count is None else int(count),
        "tolerated_percentage": None if pct is None else float(pct),
        "writer": writer,
        "label": node.label,
        "role_arn": d.state.role_arn,
        "execution_role": d.state.role_arn,
    }
    if redriven is not None:
        spec["redrive"] = True
    frame.map_run = run_id
    frame.phase = "children"
    d.commands.append(StartMapRun(run_id, spec))


def map_run_finished(d: StepContext, event: MapRunFinished) -> None:
    """The map run ended: record it and finish the Map state (a stale run is ignored)."""
    frame = next(
        (f for f in d.state.frames.values() if f.map_run == event.run_id),
        None,
    )
    if frame is None or frame.phase != "children":
        return
    node = d.node(frame)
    assert isinstance(node, MapState)
    frame.phase = "task"  # no longer waiting on the run
    frame.map_reports = None
    inline = node.processor_mode != "DISTRIBUTED"
    if event.status == "SUCCEEDED":
        frame.map_run = None
        if not inline:
            d.emit(frame, "MapRunSucceeded")
        d.emit(frame, "MapStateSucceeded")
        try:
            output, assigned = dataflow.result_output(d, frame, node, event.output)
        except StatesError as exc:
            d.state_error(frame, node, exc)
            return
        d.exit_state(frame, node, output, assigned=assigned)
        return
    error = event.error
    if error is None:
        error = "States.Aborted" if event.status == "ABORTED" else StatesErrorName.RUNTIME.value
    # frame.map_run stays: a redrive of the execution runs this run again
    _run_failed(d, frame, node, error, event.cause, aborted=event.status == "ABORTED")


def abort(d: StepContext, frame: Frame) -> None:
    """The Map is abandoned while its run is going (a sibling failed): cancel the run once."""
    run_id = frame.map_run
    if run_id is None or frame.phase != "children":
        return
    frame.map_run = None
    node = d.node(frame)
    if isinstance(node, MapState) and node.processor_mode == "DISTRIBUTED":
        d.emit(frame, "MapRunAborted")
    d.commands.append(CancelMapRun(run_id))


def cancel_all(d: StepContext) -> None:
    """The execution ends: cancel every map run still going (each once).

    The frame keeps the run's id: a redrive of the execution redrives that run.
    """
    for frame in d.state.frames.values():
        if frame.map_run is not None and frame.phase == "children":
            d.commands.append(CancelMapRun(frame.map_run))
            frame.phase = "aborted"


def map_run_arn(d: EvalContext, node: MapState, run_id: str) -> str:
    """``arn:aws:states:<region>:<account>:mapRun:<machine name>/<label or state>:<run id>``."""
    parts = d.state.execution_arn.split(":")
    region, account = (parts[3], parts[4]) if len(parts) > 4 else ("", "")
    name = d.state.state_machine_name
    return f"arn:aws:states:{region}:{account}:mapRun:{name}/{node.label or node.name}:{run_id}"


def _run_failed(
    d: StepContext,
    frame: Frame,
    node: MapState,
    error: str,
    cause: str | None,
    *,
    aborted: bool = False,
) -> None:
    details = {"error": error} if cause is None else {"error": error, "cause": cause}
    if aborted:
        d.emit(frame, "MapRunAborted")
    else:
        d.emit(frame, "MapRunFailed", "mapRunFailedEventDetails", details)
    frame.phase = "task"
    d.fail_state(frame, node, error, cause)


def new_run_id(d: StepContext) -> str:
    """A UUID-shaped id, the same on every replay of this decision (the engine is pure)."""
    material = f"{d.state.seed}:{d.state.execution_arn}:{d.new_id('maprun')}".encode()
    return str(uuid.UUID(bytes=hashlib.sha256(material).digest()[:16], version=4))


def redriven_run(d: StepContext, frame: Frame) -> str | None:
    """The unfinished run to run again when this entry is the redrive of the execution.

    A retry (``retry_count`` > 0) or a later entry (another decision) starts a new run.
    """
    run_id = frame.map_run
    redriving = d.state.redrive_count > 0 and d.state.redrive_date == d.now
    if isinstance(run_id, str) and redriving and frame.retry_count == 0:
        return run_id
    return None


def _items(d: StepContext, frame: Frame, node: MapState, effective: Any) -> list[Any]:
    """The items when there is no ItemReader: ``ItemsPath`` (or ``Items``), an array."""
    jsonata = dataflow.is_jsonata(node)
    if jsonata:
        items = (
            effective if node.items is MISSING else dataflow.evaluate(d, frame, node.items, "Items")
        )
    else:
        items = select(node.items_path, dataflow.scope(d, frame, effective))
    if not isinstance(items, list):
        raise StatesError(
            StatesErrorName.QUERY_EVALUATION_ERROR if jsonata else StatesErrorName.RUNTIME,
            f"Map state input must be an array but was: {map_limits.show(items)}",
        )
    return items


def _payload(
    d: StepContext, frame: Frame, node: MapState, template: Any, raw: Any, effective: Any
) -> dict[str, Any]:
    """An evaluated ``Parameters`` (JSONPath, on the effective input) or ``Arguments``."""
    if raw is MISSING:
        return {}
    if dataflow.is_jsonata(node):
        value = dataflow.evaluate(d, frame, raw, "Arguments")
    else:
        value = build(template, dataflow.scope(d, frame, effective))
    if not isinstance(value, dict):
        raise StatesError(
            StatesErrorName.RUNTIME, f"The parameters must be an object: {map_limits.show(value)}"
        )
    return value


def _reader(
    d: StepContext, frame: Frame, node: MapState, reader: ItemReaderDef | None, effective: Any
) -> tuple[dict[str, Any] | None, int | None]:
    """The evaluated ItemReader and its MaxItems (None: all; negative: the run fails)."""
    if reader is None:
        return None, None
    parameters = _payload(d, frame, node, reader.parameters, reader.parameters_raw, effective)
    config = dict(reader.reader_config)
    if dataflow.is_jsonata(node):
        config = dict(dataflow.evaluate(d, frame, config, "ReaderConfig"))
    spec = {"resource": reader.resource, "parameters": parameters, "reader_config": config}
    return spec, _max_items(d, frame, node, reader)


def _max_items(d: StepContext, frame: Frame, node: MapState, reader: ItemReaderDef) -> int | None:
    """MaxItems from a literal, a JSONata expression or ``MaxItemsPath``.

    A number given as a string (e.g. from a variable) counts as that number; 0 means
    no limit; a negative value fails the run (the caller), as Step Functions does.
    """
    field = "MaxItems"
    if reader.max_items_path is not None:
        field = "MaxItemsPath"
        path = reader.max_items_path
        try:
            value = dataflow.scope(d, frame, frame.input).read(path)
        except PathNotFoundError:
            raise StatesError(
                StatesErrorName.RUNTIME,
                f"Invalid path '{path.text}' : No results for path: {path.normalized}",
            ) from None
    elif dataflow.is_jsonata(node) and isinstance(reader.max_items, str):
        value = dataflow.evaluate(d, frame, reader.max_items, field)
    else:
        value = reader.max_items
    if value is None:
        return None
    number = _whole(value)
    if number is None:
        kind = StatesErrorName.RUNTIME
        if field == "MaxItems":
            kind = StatesErrorName.QUERY_EVALUATION_ERROR
        raise StatesError(
            kind,
            f'The {field} field refers to value "{map_limits.show(value)}" which is not '
            "a valid integer",
        )
    if number < 0:
        return number
    return None if number == 0 else min(number, MAX_ITEMS)


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
    return None


def _batcher(
    d: StepContext, frame: Frame, node: MapState, batcher: ItemBatcherDef | None, effective: Any
) -> dict[str, Any] | None:
    """The evaluated ItemBatcher: ``{"max_items", "max_bytes", "batch_input"}``."""
    if batcher is None:
        return None
    max_items = map_limits.number(
        d,
        frame,
        node,
        batcher.max_items,
        batcher.max_items_path,
        "MaxItemsPerBatch",
        integer=True,
    )
    max_bytes = map_limits.number(
        d,
        frame,
        node,
        batcher.max_bytes,
        batcher.max_bytes_path,
        "MaxInputBytesPerBatch",
        integer=True,
    )
    batch_input: Any = None
    if batcher.batch_input_raw is not MISSING:
        if dataflow.is_jsonata(node):
            batch_input = dataflow.evaluate(d, frame, batcher.batch_input_raw, "BatchInput")
        else:
            batch_input = build(batcher.batch_input, dataflow.scope(d, frame, effective))
    return {
        "max_items": None if max_items is None else int(max_items) or None,
        "max_bytes": None if max_bytes is None else int(max_bytes) or None,
        "batch_input": batch_input,
    }


def _writer(
    d: StepContext, frame: Frame, node: MapState, writer: ResultWriterDef | None, effective: Any
) -> dict[str, Any] | None:
    """The evaluated ResultWriter: ``{"resource", "parameters", "writer_config"}``."""
    if writer is None:
        return None
    parameters = _payload(d, frame, node, writer.parameters, writer.parameters_raw, effective)
    config = dict(writer.writer_config or {})
    if config and dataflow.is_jsonata(node):
        config = dict(dataflow.evaluate(d, frame, config, "WriterConfig"))
    return {"resource": writer.resource or "", "parameters": parameters, "writer_config": config}
