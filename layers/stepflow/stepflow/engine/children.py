"""Map iterations run as child executions (a Map larger than the state's ``child_limit``).

A large Map would make one execution's state, history items and partition
grow with its item count. Past the limit, each iteration becomes a child
execution of its own (``StartChild``), reporting back with ``ChildFinished``;
the parent keeps only a window of running children and the results. The
parent records the iterations' ``MapIteration*`` events; the states inside an
iteration are recorded in the child's own history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stepflow.asl.states.map import MapState
from stepflow.engine import dataflow, fanout
from stepflow.engine.model import CancelChild, ChildFinished, Frame, StartChild
from stepflow.errors import StatesErrorName

if TYPE_CHECKING:
    from stepflow.engine.decide import Decider

WINDOW = 100
"""Most child executions one Map runs at once (bounds the parent's state and outbox)."""


def start_child(d: Decider, frame: Frame, machine: str, index: int, value: object) -> None:
    """Start item ``index`` of ``frame``'s Map as a child execution."""
    fan = frame.fanout
    assert fan is not None
    child_id = d.new_id(f"{frame.id}/c")
    fan.children[index] = child_id
    d.state.children[child_id] = frame.id
    variables = dict(dataflow.variables(d, frame))
    d.commands.append(StartChild(child_id, machine, value, variables))


def child_finished(d: Decider, event: ChildFinished) -> None:
    """A child execution ended: record its result like an inline iteration's."""
    frame_id = d.state.children.pop(event.child_id, None)
    if frame_id is None:  # a duplicate report, or a child of an aborted Map
        return
    frame = d.state.frames[frame_id]
    fan = frame.fanout
    node = d.node(frame)
    assert fan is not None and isinstance(node, MapState)
    index = next(i for i, c in fan.children.items() if c == event.child_id)
    del fan.children[index]
    silent = node.processor_mode == "DISTRIBUTED"
    if event.status == "SUCCEEDED":
        fan.results[index] = event.output
        fan.done[index] = True
        _iteration_event(d, frame, node, "Succeeded", index, silent)
        fanout.start_iterations(d, frame, node)
        if not fan.children and fan.next_index >= fan.total and frame.phase == "children":
            fanout.complete(d, frame, node)
        return
    error, cause = event.error, event.cause
    if event.status == "ABORTED" and error is None:
        error = "States.Aborted"  # a child stopped from outside its parent
    if error == StatesErrorName.RUNTIME:  # never caught: it ends the whole execution
        d.frame_failed(frame, error, cause, fatal=True)
        return
    _iteration_event(d, frame, node, "Failed", index, silent)
    fan.failures += 1
    fan.results[index] = dataflow.error_output(error, cause)
    fan.done[index] = True
    if fanout.tolerated(fan):
        fanout.start_iterations(d, frame, node)
        if not fan.children and fan.next_index >= fan.total:
            fanout.complete(d, frame, node)
        return
    if fan.tolerated_count is not None or fan.tolerated_percentage is not None:
        error = StatesErrorName.EXCEED_TOLERATED_FAILURE_THRESHOLD
        cause = "The specified tolerated failure threshold was exceeded"
    abort(d, frame, node)
    d.fail_state(frame, node, error, cause)


def abort(d: Decider, frame: Frame, node: MapState) -> None:
    """Stop every running child execution of ``frame``'s Map."""
    fan = frame.fanout
    assert fan is not None
    silent = node.processor_mode == "DISTRIBUTED"
    for index, child_id in sorted(fan.children.items()):
        d.state.children.pop(child_id, None)
        d.commands.append(CancelChild(child_id))
        _iteration_event(d, frame, node, "Aborted", index, silent)
    fan.children.clear()
    fan.next_index = fan.total


def _iteration_event(
    d: Decider, frame: Frame, node: MapState, outcome: str, index: int, silent: bool
) -> None:
    if not silent:
        key = f"mapIteration{outcome}EventDetails"
        d.emit(frame, f"MapIteration{outcome}", key, {"name": node.name, "index": index})
