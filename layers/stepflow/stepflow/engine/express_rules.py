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
from stepflow.asl.walk import StateVisit, iter_states
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
    for visit in iter_states(raw):
        resource = visit.state.get("Resource")
        if visit.state.get("Type") != "Task" or not isinstance(resource, str):
            continue
        refusal = express_refusal(resource) if _express(visit, machine_type) else None
        if refusal is not None:
            found.append(("".join(f"/{token}" for token in visit.path) + "/Resource", refusal))
    return found


def _express(visit: StateVisit, machine_type: str) -> bool:
    """Whether the state runs as EXPRESS: the machine's type, unless a distributed Map says."""
    express = machine_type == "EXPRESS"
    for state, processor in visit.scopes:
        config = processor.get("ProcessorConfig") if state.get("Type") == "Map" else None
        if isinstance(config, Mapping) and config.get("Mode") == "DISTRIBUTED":
            express = config.get("ExecutionType", "STANDARD") == "EXPRESS"
    return express
