"""Map iterations run as child executions (a Map larger than the state's ``child_limit``).

A large Map would make one execution's state, history items and partition
grow with its item count. Past the limit, each iteration becomes a child
execution of its own (``StartChild``), reporting back with ``ChildFinished``
(joined by :func:`stepflow.engine.fanout.child_finished`);
the parent keeps only a window of running children and the results. The
parent records the iterations' ``MapIteration*`` events; the states inside an
iteration are recorded in the child's own history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stepflow.asl.states.map import MapState
from stepflow.engine import dataflow
from stepflow.engine.model import CancelChild, Frame, StartChild

if TYPE_CHECKING:
    from stepflow.engine.step_context import StepContext

WINDOW = 100
"""Most child executions one Map runs at once (bounds the parent's state and outbox)."""


def start_child(d: StepContext, frame: Frame, machine: str, index: int, value: object) -> None:
    """Start item ``index`` of ``frame``'s Map as a child execution."""
    fan = frame.fanout
    assert fan is not None
    child_id = d.new_id(f"{frame.id}/c")
    fan.children[index] = child_id
    d.state.children[child_id] = frame.id
    variables = dict(dataflow.variables(d, frame))
    d.commands.append(StartChild(child_id, machine, value, variables))


def abort(d: StepContext, frame: Frame, node: MapState) -> None:
    """Stop every running child execution of ``frame``'s Map."""
    fan = frame.fanout
    assert fan is not None
    silent = node.processor_mode == "DISTRIBUTED"
    for index, child_id in sorted(fan.children.items()):
        d.state.children.pop(child_id, None)
        d.commands.append(CancelChild(child_id))
        iteration_event(d, frame, node, "Aborted", index, silent)
    fan.children.clear()
    fan.next_index = fan.total


def iteration_event(
    d: StepContext, frame: Frame, node: MapState, outcome: str, index: int, silent: bool
) -> None:
    """Record ``MapIteration<outcome>`` for item ``index`` (not for a distributed Map)."""
    if not silent:
        key = f"mapIteration{outcome}EventDetails"
        d.emit(frame, f"MapIteration{outcome}", key, {"name": node.name, "index": index})
