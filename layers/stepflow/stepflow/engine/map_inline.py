"""An INLINE Map past ``child_limit``: its iterations run in a map run (``StartMapRun``).

The same mechanism as a distributed Map's (:mod:`stepflow.engine.distributed`), so
that the parent's state stays bounded and each item costs the same at any count:
items written once in pages, results read back at the end, the parent's head
written once per batch of the run. What an inline Map shows is kept: no MapRun
events or Map Run API entry; ``MapIterationStarted/Succeeded/Failed/Aborted`` in the
parent's history, from the run's progress reports (:class:`MapIterations`, one per
commit of the run, numbered so that a redelivered or early report counts once); the
states of an iteration are recorded in its child execution's own history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stepflow.asl.states.map import MapState
from stepflow.engine import dataflow, distributed
from stepflow.engine.model import Frame, MapIterations, MapRunFinished, StartMapRun
from stepflow.errors import StatesError, StatesErrorName

if TYPE_CHECKING:
    from stepflow.engine.step_context import StepContext


def run_inline(
    d: StepContext,
    frame: Frame,
    node: MapState,
    items: list[Any],
    concurrency: int,
    tolerated: tuple[int | None, float | None],
) -> None:
    """Run an INLINE Map's iterations in a map run (more items than ``child_limit``).

    The same coordinator as a distributed Map's (items in pages written once, a
    bounded head, results read back at the end), with ``"inline": true`` in the spec:
    no MapRun events, no Map Run API entry, the children unlisted, and a child's
    failure (without tolerance) failing the Map with that child's error, as inline.
    The iterations' states are recorded in the children's own histories.
    """
    effective = frame.effective
    redriven = distributed.redriven_run(d, frame)
    run_id = redriven or distributed.new_run_id(d)
    spec: dict[str, Any] = {
        "map_run_arn": distributed.map_run_arn(d, node, run_id),
        "run_id": run_id,
        "execution_arn": d.state.execution_arn,
        "state_name": node.name,
        "parent_machine": frame.machine,
        "machine": node.item_processor.id,
        "execution_type": "STANDARD",
        "items": items,
        "reader": None,
        "batcher": None,
        "scope": {
            "input": effective,
            "context": d.context(frame),
            "variables": dict(dataflow.variables(d, frame)),
        },
        "max_concurrency": concurrency,
        "tolerated_count": tolerated[0],
        "tolerated_percentage": tolerated[1],
        "writer": None,
        "label": None,
        "role_arn": d.state.role_arn,
        "execution_role": d.state.role_arn,
        "inline": True,
        # the parent's identity, which its iterations present as $$.Execution
        "execution": {
            "name": d.state.name,
            "state_machine_arn": d.state.state_machine_arn,
            "state_machine_name": d.state.state_machine_name,
            "role_arn": d.state.role_arn,
            "start_time": d.state.start_time,
            "root_arn": (d.state.parent or {}).get("root_arn") or d.state.execution_arn,
            "child_limit": d.state.child_limit,
        },
    }
    if redriven is not None:
        # The execution's redrive runs this run's unsuccessful iterations again (AWS's
        # rule for an inline Map); the reports already applied stay applied.
        spec["redrive"] = True
    else:
        frame.map_reports = None
    frame.map_run = run_id
    frame.phase = "children"
    d.commands.append(StartMapRun(run_id, spec))


def final_report(d: StepContext, event: MapRunFinished) -> None:
    """The last progress report, which travels inside the run's ``MapRunFinished``."""
    if event.report is not None:
        map_iterations(d, MapIterations(event.run_id, int(event.report[0]), event.report[1]))


def map_iterations(d: StepContext, event: MapIterations) -> None:
    """An inline Map's run reports progress: record its iterations' events (stale: ignored)."""
    frame = next((f for f in d.state.frames.values() if f.map_run == event.run_id), None)
    if frame is None or frame.phase != "children":
        return
    applied = frame.map_reports or [0]
    if event.seq <= applied[0] or event.seq in applied[1:]:
        return  # a duplicate
    later = sorted({*applied[1:], event.seq})
    done = applied[0]
    while later and later[0] == done + 1:
        done = later.pop(0)
    frame.map_reports = [done, *later]
    node = d.node(frame)
    assert isinstance(node, MapState)
    for outcome, index in event.events:
        key = f"mapIteration{outcome}EventDetails"
        d.emit(frame, f"MapIteration{outcome}", key, {"name": node.name, "index": int(index)})


def abandon(d: StepContext, frame: Frame, *, aborted: bool) -> None:
    """The parent abandons ``frame``'s inline map run: record what it had not reported.

    Its events up to now, then (``aborted``: a Parallel sibling failed) each running
    iteration's ``MapIterationAborted``, as with the iterations in the parent; when the
    execution ends (stopped, timed out), no Aborted, as there. Known only if the driver
    read the run for this decision (``d.unreported``); the run drops what it held back.
    """
    run_id = frame.map_run
    if run_id is None or frame.phase != "children":
        return
    progress = d.unreported.pop(run_id, None)
    node = d.node(frame)
    if progress is None or not isinstance(node, MapState) or node.processor_mode == "DISTRIBUTED":
        return
    events = list(progress.pending)
    if aborted:
        events += [("Aborted", index) for index in progress.running]
    for outcome, index in events:
        key = f"mapIteration{outcome}EventDetails"
        d.emit(frame, f"MapIteration{outcome}", key, {"name": node.name, "index": int(index)})


def run_failed(d: StepContext, event: MapRunFinished) -> bool:
    """An inline Map's run failed: fail the Map state as an inline Map fails (True if so).

    No MapRun event. The frame keeps the run's id and the reports it applied, so that
    a redrive of the execution runs only this run's unsuccessful iterations again.
    A run that failed before reporting any iteration failed on the Map's own
    evaluation (its ItemSelector, evaluated by the run): that is the state's error,
    said as when evaluated here ("An error occurred while executing the state ...",
    and ``EvaluationFailed`` for JSONata).
    """
    if event.status == "SUCCEEDED":
        return False
    frame = next((f for f in d.state.frames.values() if f.map_run == event.run_id), None)
    if frame is None or frame.phase != "children":
        return False
    node = d.node(frame)
    if not isinstance(node, MapState) or node.processor_mode == "DISTRIBUTED":
        return False
    frame.phase = "task"  # no longer waiting on the run
    error = event.error
    if error is None:
        error = "States.Aborted" if event.status == "ABORTED" else StatesErrorName.RUNTIME.value
    own = (StatesErrorName.RUNTIME, StatesErrorName.QUERY_EVALUATION_ERROR)
    if frame.map_reports is None and error in own:
        d.state_error(frame, node, StatesError(error, event.cause))
        return True
    d.fail_state(frame, node, error, event.cause)  # States.Runtime: never caught
    return True
