"""Parallel and Map: starting children, joining their results, failing together."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stepflow.asl.states.base import MISSING, State
from stepflow.asl.states.map import MapState
from stepflow.asl.states.parallel import ParallelState
from stepflow.engine import dataflow, distributed, map_inline, map_limits
from stepflow.engine.model import Fanout, Frame
from stepflow.engine.pipeline import build, select
from stepflow.errors import StatesError, StatesErrorName

if TYPE_CHECKING:
    from stepflow.engine.step_context import StepContext


def run_parallel(d: StepContext, frame: Frame, node: ParallelState) -> None:
    """Start (or restart, on retry) every branch of a Parallel state.

    The redrive of the execution starts only the branches that did not succeed.
    """
    effective = dataflow.effective_input(d, frame, node, template=node.parameters)
    frame.effective = effective
    d.emit(frame, "ParallelStateStarted")
    n = len(node.branches)
    kept = _redriven(d, frame, node, "parallel", n, [])
    results = [None] * n if kept is None else kept.results
    done = [False] * n if kept is None else kept.done
    frame.fanout = Fanout("parallel", n, results=results, done=done, next_index=n, state=node.name)
    frame.phase = "children"
    children = [
        _child(d, frame, branch.id, branch.start_at, effective, i)
        for i, branch in enumerate(node.branches)
        if not done[i]
    ]
    for child in reversed(children):
        d.push(child)
    if all(done):  # no branches, or a redrive with every branch succeeded
        complete(d, frame, node)


def run_map(d: StepContext, frame: Frame, node: MapState) -> None:
    """Start (or restart, on retry) a Map state; its items run as child frames.

    A DISTRIBUTED Map runs its items in a map run instead (:mod:`stepflow.engine.distributed`).
    """
    if _distributed(node):
        distributed.run_map(d, frame, node)
        return
    jsonata = dataflow.is_jsonata(node)
    effective = dataflow.effective_input(d, frame, node)
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
    frame.effective = effective
    concurrency = map_limits.number(
        d,
        frame,
        node,
        node.max_concurrency,
        node.max_concurrency_path,
        "MaxConcurrency",
        integer=True,
    )
    d.emit(frame, "MapStateStarted", "mapStateStartedEventDetails", {"length": len(items)})
    count, pct = map_limits.tolerance(d, frame, node)
    n = len(items)
    if d.state.child_limit is not None and n > d.state.child_limit:
        # Past the limit, the iterations are child executions of a map run (flat cost per item).
        tolerated = (None if count is None else int(count), None if pct is None else float(pct))
        map_inline.run_inline(d, frame, node, items, int(concurrency or 0), tolerated)
        return
    kept = _redriven(d, frame, node, "map", n, items)
    frame.fanout = Fanout(
        "map",
        n,
        items=items,
        results=[None] * n if kept is None else kept.results,
        done=[False] * n if kept is None else kept.done,
        max_concurrency=int(concurrency or 0),
        tolerated_count=None if count is None else int(count),
        tolerated_percentage=None if pct is None else float(pct),
        effective_input=effective,
        state=node.name,
    )
    frame.phase = "children"
    if all(frame.fanout.done):  # no items, or a redrive with every item succeeded
        complete(d, frame, node)
        return
    start_iterations(d, frame, node)


def _redriven(
    d: StepContext, frame: Frame, node: State, kind: str, total: int, items: list[Any]
) -> Fanout | None:
    """The iterations or branches to keep when this entry is the execution's redrive.

    AWS's redrive of an inline Map or a Parallel runs only its failed, aborted and
    never-started iterations or branches again: the succeeded ones keep their results
    (those of this very state, on the same items; a retry or a later entry runs all).
    A branch or iteration runs again from its start.
    """
    kept = frame.fanout
    redriving = d.state.redrive_count > 0 and d.state.redrive_date == d.now
    if kept is None or not redriving or frame.retry_count or kept.kind != kind:
        return None
    if kept.state != node.name or kept.total != total or kept.items != items:
        return None
    for index in kept.failed:
        kept.done[index], kept.results[index] = False, None
    return kept


def start_iterations(d: StepContext, frame: Frame, node: MapState) -> None:
    """Start items up to MaxConcurrency; an ItemSelector failure fails the Map state.

    Items after the first batch start from inside another item's completion,
    so the failure is attributed to the Map here, not to whatever ran last.
    """
    fan = frame.fanout
    assert fan is not None
    limit = fan.max_concurrency or fan.total
    started = []
    while fan.next_index < fan.total and len(fan.children) < limit:
        d.time_budget.check()
        i = fan.next_index
        fan.next_index += 1
        if fan.done[i]:
            continue  # succeeded before the execution was redriven
        try:
            value = _item_input(d, frame, node, i, fan.items[i], fan.effective_input)
        except StatesError as exc:
            abort_children(d, frame)
            d.state_error(frame, node, exc)
            return
        d.emit(
            frame,
            "MapIterationStarted",
            "mapIterationStartedEventDetails",
            {"name": node.name, "index": i},
        )
        proc = node.item_processor
        started.append(_child(d, frame, proc.id, proc.start_at, value, i))
    for child in reversed(started):
        d.push(child)


def _item_input(
    d: StepContext, frame: Frame, node: MapState, index: int, item: Any, effective: Any
) -> Any:
    """The input of iteration ``index``: the item, or the ItemSelector built from it."""
    if dataflow.is_jsonata(node):
        if node.item_selector_raw is MISSING:
            return item
        context = d.context(frame, map_item=(index, item))
        return dataflow.evaluate(d, frame, node.item_selector_raw, "ItemSelector", context=context)
    if node.item_selector is None:
        return item
    return build(node.item_selector, dataflow.scope(d, frame, effective, map_item=(index, item)))


def _child(
    d: StepContext,
    parent: Frame,
    machine: str,
    start: str,
    value: Any,
    index: int,
) -> Frame:
    child = Frame(
        id=d.new_id(f"{parent.id}/"),
        machine=machine,
        state=start,
        input=value,
        parent=parent.id,
        index=index,
        prev_id=parent.prev_id,
        silent=parent.silent,
    )
    d.state.frames[child.id] = child
    assert parent.fanout is not None
    parent.fanout.children[index] = child.id
    return child


def child_done(d: StepContext, child: Frame) -> None:
    """A branch or iteration succeeded: record its output, start more, or finish."""
    parent = d.state.frames[child.parent or ""]
    fan = parent.fanout
    assert fan is not None
    node = d.node(parent)
    fan.results[child.index] = child.output
    fan.done[child.index] = True
    fan.children.pop(child.index, None)
    d.state.frames.pop(child.id, None)
    if fan.kind == "map":
        assert isinstance(node, MapState)
        d.emit(
            child,
            "MapIterationSucceeded",
            "mapIterationSucceededEventDetails",
            {"name": node.name, "index": child.index},
        )
        parent.prev_id = child.prev_id
        start_iterations(d, parent, node)
    else:
        parent.prev_id = max(parent.prev_id, child.prev_id)
    if not fan.children and fan.next_index >= fan.total and parent.phase == "children":
        complete(d, parent, node)


def child_failed(d: StepContext, child: Frame) -> None:
    """A branch or iteration failed: tolerate it (Map) or fail the whole state."""
    parent = d.state.frames[child.parent or ""]
    fan = parent.fanout
    assert fan is not None
    node = d.node(parent)
    fan.children.pop(child.index, None)
    d.state.frames.pop(child.id, None)
    parent.prev_id = child.prev_id
    error, cause = child.error, child.cause
    if fan.kind == "map":
        assert isinstance(node, MapState)
        d.emit(
            child,
            "MapIterationFailed",
            "mapIterationFailedEventDetails",
            {"name": node.name, "index": child.index},
        )
        parent.prev_id = child.prev_id
        fan.failures += 1
        fan.failed.append(child.index)
        fan.results[child.index] = dataflow.error_output(error, cause)
        fan.done[child.index] = True
        if tolerated(fan):
            start_iterations(d, parent, node)
            if not fan.children and fan.next_index >= fan.total:
                complete(d, parent, node)
            return
        if fan.tolerated_count is not None or fan.tolerated_percentage is not None:
            error = StatesErrorName.EXCEED_TOLERATED_FAILURE_THRESHOLD
            cause = "The specified tolerated failure threshold was exceeded"
    abort_children(d, parent)
    d.fail_state(parent, node, error, cause)


def tolerated(fan: Fanout) -> bool:
    """Whether the failures so far are within every threshold set (exceeding either fails)."""
    if fan.tolerated_count is None and fan.tolerated_percentage is None:
        return False
    if fan.tolerated_count is not None and fan.failures > fan.tolerated_count:
        return False
    if fan.tolerated_percentage is not None and fan.total:
        return fan.failures * 100.0 / fan.total <= fan.tolerated_percentage
    return True


def abort_children(d: StepContext, frame: Frame) -> None:
    """Abort every running child of ``frame`` (and theirs), cancelling their tasks."""
    fan = frame.fanout
    if fan is None:
        map_inline.abandon(d, frame, aborted=True)
        distributed.abort(d, frame)  # a distributed Map waiting for its run, if any
        return
    node = d.node(frame)
    for index, child_id in sorted(fan.children.items()):
        child = d.state.frames.get(child_id)
        if child is None:
            continue
        abort_children(d, child)
        if child.task_id is not None and child.task_id in d.state.tasks:
            d.cancel_task(child.task_id)
            d.state.tasks.pop(child.task_id, None)
        d.state.frames.pop(child_id, None)
        child.phase = "aborted"
        d.drop_timers(frame_id=child.id)
        if fan.kind == "map":
            d.emit(
                child,
                "MapIterationAborted",
                "mapIterationAbortedEventDetails",
                {"name": node.name, "index": index},
            )
    fan.children.clear()
    fan.next_index = fan.total


def complete(d: StepContext, frame: Frame, node: State) -> None:
    """Every child succeeded (or was tolerated): the state's result is their outputs."""
    fan = frame.fanout
    assert fan is not None and isinstance(node, ParallelState | MapState)
    frame.phase = "task"  # no longer waiting on children
    prefix = "Parallel" if fan.kind == "parallel" else "Map"
    if fan.kind == "map":  # Step Functions records no ParallelStateSucceeded
        d.emit(frame, f"{prefix}StateSucceeded")
    results = list(fan.results)
    frame.fanout = None
    try:
        output, assigned = dataflow.result_output(d, frame, node, results)
    except StatesError as exc:
        d.state_error(frame, node, exc)
        return
    d.exit_state(frame, node, output, assigned=assigned)


def state_failed_event(d: StepContext, frame: Frame, node: State) -> None:
    """Parallel and Map record ``…StateFailed`` when they finally fail (not per retry)."""
    if isinstance(node, ParallelState):
        d.emit(frame, "ParallelStateFailed")
    elif isinstance(node, MapState):  # a distributed Map's MapRunFailed came first
        d.emit(frame, "MapStateFailed")


def _distributed(node: State) -> bool:
    """Whether a Map runs its items as child executions (and so records a map run)."""
    return isinstance(node, MapState) and node.processor_mode == "DISTRIBUTED"
