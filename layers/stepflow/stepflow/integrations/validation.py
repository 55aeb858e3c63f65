"""Validation of a definition's Task resources, at the edge (never in the boto-free asl).

ValidateStateMachineDefinition, CreateStateMachine/UpdateStateMachine and
``stepflow validate`` add these diagnostics to the engine's own:

- a resource AWS refuses (an unknown ``aws-sdk`` service or action, an
  optimized action AWS does not have, such as ``dynamodb:query``) is an ERROR
  ``SCHEMA_VALIDATION_FAILED`` with AWS's message (:mod:`.aws_resources`);
- a resource AWS accepts but StepFlow cannot run is a WARNING
  ``UNSUPPORTED_INTEGRATION`` (:meth:`Registry.problem`); running it fails
  with ``States.Runtime`` naming the resource.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from stepflow.asl import DefinitionError, Diagnostic, parse, validate
from stepflow.asl.walk import iter_states
from stepflow.engine.express_rules import definition_refusals
from stepflow.integrations.aws_resources import aws_problem
from stepflow.integrations.catalog import default_registry
from stepflow.integrations.registry import SUPPORTED_DOC, Registry

UNSUPPORTED = "UNSUPPORTED_INTEGRATION"
"""The code of the warning for a resource StepFlow cannot run."""


def resource_diagnostics(
    definition: str | Mapping[str, Any], registry: Registry | None = None
) -> list[Diagnostic]:
    """The diagnostics of every Task state's ``Resource`` in ``definition`` (nested ones too)."""
    raw = _load(definition)
    if raw is None:
        return []
    registry = registry if registry is not None else default_registry()
    try:
        tasks = list(_task_resources(raw))
    except RecursionError:  # the engine reports the nesting
        return []
    found: list[Diagnostic] = []
    for location, resource in tasks:
        refused = aws_problem(resource)
        if refused is not None:
            found.append(Diagnostic(location, refused))
            continue
        problem = registry.problem(resource)
        if problem is not None:
            message = (
                f"StepFlow cannot run the Task resource {resource}: {problem} "
                f"(see {SUPPORTED_DOC}); the task fails with States.Runtime"
            )
            found.append(Diagnostic(location, message, UNSUPPORTED, "WARNING"))
    return found


def validate_definition(
    definition: str | Mapping[str, Any],
    registry: Registry | None = None,
    machine_type: str = "STANDARD",
) -> list[Diagnostic]:
    """The engine's diagnostics of ``definition``, those of its resources and of EXPRESS."""
    diagnostics = validate(definition)
    return (
        diagnostics
        + resource_diagnostics(definition, registry)
        + express_diagnostics(definition, machine_type)
    )


def express_diagnostics(definition: str | Mapping[str, Any], machine_type: str) -> list[Diagnostic]:
    """What AWS refuses in an EXPRESS workflow: ``.sync``, ``.waitForTaskToken``, activities.

    In the whole definition when ``machine_type`` is EXPRESS, else in the item
    processors of EXPRESS distributed Maps (see :mod:`stepflow.engine.express_rules`).
    """
    raw = _load(definition)
    if not isinstance(raw, Mapping):
        return []
    try:
        return [Diagnostic(at, message) for at, message in definition_refusals(raw, machine_type)]
    except RecursionError:  # the engine reports the nesting
        return []


def check_definition(definition: str | Mapping[str, Any], registry: Registry | None = None) -> None:
    """Raise :class:`DefinitionError` unless the engine and AWS accept ``definition``.

    The engine's parse comes first (its errors are raised as they are); then a
    resource AWS refuses raises with the resource diagnostics.
    """
    parse(definition)
    diagnostics = resource_diagnostics(definition, registry)
    if any(d.severity == "ERROR" for d in diagnostics):
        raise DefinitionError(diagnostics)


def _load(definition: object) -> Any:
    if isinstance(definition, Mapping):
        return definition
    if not isinstance(definition, str | bytes | bytearray):
        return None
    try:
        return json.loads(definition)
    except (ValueError, RecursionError):
        return None


def _task_resources(raw: Any) -> Iterator[tuple[str, str]]:
    """``(JSON pointer of the Resource, resource)`` of each Task state, branches and maps too."""
    for visit in iter_states(raw):
        resource = visit.state.get("Resource")
        if visit.state.get("Type") == "Task" and isinstance(resource, str):
            yield f"{visit.location}/Resource", resource
