"""What an EXPRESS workflow may not run, as AWS refuses it when the state machine is created.

AWS refuses, in an EXPRESS state machine and in the item processor of a distributed Map
whose ``ExecutionType`` is ``EXPRESS``, every Task whose resource needs a durable wait:

- ``.waitForTaskToken``: ``Express state machine does not support '.waitForTaskToken'
  service integration  at /States/Publish/Resource`` (two spaces before ``at``, as AWS
  writes it);
- ``.sync`` (and ``.sync:2``): ``Express state machine does not support '.sync' service
  integration at /States/StartExecution/Resource``;
- an activity: ``Express state machine does not support Activity ARN at
  /States/ActivityTask/Resource``.

All are ``SCHEMA_VALIDATION_FAILED``. Wait states and Retry intervals are allowed (an
Express execution may run for up to five minutes).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from stepflow.asl.machine import Machine
from stepflow.asl.states.map import MapState
from stepflow.asl.states.parallel import ParallelState
from stepflow.asl.states.task import TaskState
from stepflow.engine.resources import describe

EXPRESS_MAX_SECONDS = 300
"""The longest an EXPRESS execution may run (AWS: five minutes); past it, it times out."""


def express_refusal(resource: str) -> str | None:
    """Why an EXPRESS workflow cannot run a Task on ``resource`` (AWS's text), or None."""
    info = describe(resource)
    if info.kind == "activity":
        return "Express state machine does not support Activity ARN"
    if info.pattern == "wait-for-token":
        return "Express state machine does not support '.waitForTaskToken' service integration "
    if info.pattern == "sync":
        return "Express state machine does not support '.sync' service integration"
    if info.pattern == "sync2":
        return "Express state machine does not support '.sync:2' service integration"
    return None


def machine_refusals(machine: Machine, location: str = "") -> Iterator[tuple[str, str]]:
    """``(location of the Resource, message)`` of every refused Task in a parsed machine.

    Nested Parallel branches and inline Map processors are included; a nested
    distributed Map's processor is checked by its own ``ExecutionType``.
    """
    for name, state in machine.states.items():
        at = f"{location}/States/{name}"
        if isinstance(state, TaskState):
            refusal = express_refusal(state.resource)
            if refusal is not None:
                yield f"{at}/Resource", refusal
        elif isinstance(state, ParallelState):
            for i, branch in enumerate(state.branches):
                yield from machine_refusals(branch, f"{at}/Branches/{i}")
        elif isinstance(state, MapState):
            yield from machine_refusals(state.item_processor, f"{at}/ItemProcessor")


def definition_refusals(raw: Mapping[str, Any], machine_type: str) -> list[tuple[str, str]]:
    """``(location, message)`` of what AWS refuses in a raw definition of ``machine_type``.

    The whole definition when ``machine_type`` is ``EXPRESS``; else only the item
    processors of distributed Maps whose ``ProcessorConfig.ExecutionType`` is EXPRESS.
    """
    found: list[tuple[str, str]] = []
    _walk(raw, "", machine_type == "EXPRESS", found)
    return found


def _walk(machine: Any, location: str, express: bool, found: list[tuple[str, str]]) -> None:
    states = machine.get("States") if isinstance(machine, Mapping) else None
    if not isinstance(states, Mapping):
        return
    for name, state in states.items():
        if not isinstance(state, Mapping):
            continue
        at = f"{location}/States/{name}"
        kind = state.get("Type")
        resource = state.get("Resource")
        if express and kind == "Task" and isinstance(resource, str):
            refusal = express_refusal(resource)
            if refusal is not None:
                found.append((f"{at}/Resource", refusal))
        elif kind == "Parallel" and isinstance(state.get("Branches"), list):
            for i, branch in enumerate(state["Branches"]):
                _walk(branch, f"{at}/Branches/{i}", express, found)
        elif kind == "Map":
            key = "ItemProcessor" if "ItemProcessor" in state else "Iterator"
            processor = state.get(key)
            config = processor.get("ProcessorConfig") if isinstance(processor, Mapping) else None
            inner = express
            if isinstance(config, Mapping) and config.get("Mode") == "DISTRIBUTED":
                inner = config.get("ExecutionType", "STANDARD") == "EXPRESS"
            _walk(processor, f"{at}/{key}", inner, found)
