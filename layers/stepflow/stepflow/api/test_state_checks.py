"""TestState's request checks: the combinations AWS refuses, with AWS's errors.

Each is a ``ValidationException``:

- ``mock`` only on a Task, Map or Parallel state (``State type 'Pass' is not
  supported when a mock is specified``), with exactly one of ``result`` (JSON
  text) and ``errorOutput`` (its ``error`` required); a Map's mocked result is
  an array (an object when it has a ResultWriter), a Parallel's an array of one
  result per branch; ``revealSecrets`` is refused with a mock;
  a Task's mocked result is checked against its API's response model as
  ``fieldValidationMode`` says (:mod:`stepflow.api.mock_results`);
- ``context`` only with a mock, and a JSON object, as ``variables`` must be;
- ``stateConfiguration``: ``retrierRetryCount`` needs a mocked error on a state
  with a Retry; ``errorCausedByState`` a mocked error on a Map or Parallel
  naming one of its inner states; ``mapIterationFailureCount`` a mocked Map;
  ``mapItemReaderData`` a Map with an ItemReader, and a mock (StepFlow does not
  read items from it); ``variables`` names are ASL variable names.
"""

from __future__ import annotations

import json
import re
from typing import Any

from stepflow.api.errors import validation
from stepflow.api.mock_results import check_mock_result
from stepflow.asl.states.base import State

MOCKABLE = ("Task", "Map", "Parallel")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,79}")


def check_request(p: dict[str, Any], state: dict[str, Any], node: State) -> None:
    """Refuse the combinations AWS refuses (see the module docstring)."""
    mock, config = p.get("mock"), p.get("stateConfiguration") or {}
    kind = node.type
    if mock is not None and not isinstance(mock, dict):
        raise validation("mock must be an object.")
    if not isinstance(config, dict):
        raise validation("stateConfiguration must be an object.")
    if mock is not None:
        if kind not in MOCKABLE:
            raise validation(f"State type '{kind}' is not supported when a mock is specified")
        if ("result" in mock) == ("errorOutput" in mock):
            raise validation(
                "A test mock should have only one of the following fields: [result, errorOutput]."
            )
        if p.get("revealSecrets"):
            raise validation("TestState does not support RevealSecrets when a mock is specified.")
        errors = mock.get("errorOutput", {})
        if not isinstance(errors, dict) or (
            "errorOutput" in mock and not isinstance(errors.get("error"), str)
        ):
            raise validation("mock.errorOutput.error is required when errorOutput is specified.")
        if "result" in mock:
            _check_mock_result(mock_result(mock), node, state)
            if kind == "Task":
                check_mock_result(
                    state.get("Resource"), mock_result(mock), mock.get("fieldValidationMode")
                )
    if p.get("context") is not None:
        if mock is None:
            raise validation("context may only be specified if a mock is specified.")
        if not isinstance(json_member(p["context"], "context"), dict):
            raise validation("context must be a JSON object.")
    if p.get("variables") is not None:
        given = json_member(p["variables"], "variables")
        if not isinstance(given, dict):
            raise validation("variables must be a JSON object.")
        bad = [name for name in given if not _VARIABLE.fullmatch(name) or name == "states"]
        if bad:
            raise validation(f"variables: invalid variable name '{bad[0][:80]}'.")
    error_mocked = mock is not None and "errorOutput" in mock
    if "retrierRetryCount" in config and (not error_mocked or not getattr(node, "retry", ())):
        raise validation(
            "stateConfiguration.retrierRetryCount needs a mocked error on a state with a Retry."
        )
    if "errorCausedByState" in config:
        inner = _inner_states(state)
        if not error_mocked or kind not in ("Map", "Parallel"):
            raise validation(
                "stateConfiguration.errorCausedByState needs a mocked error on a Map or "
                "Parallel state."
            )
        if config["errorCausedByState"] not in inner:
            raise validation(
                f"stateConfiguration.errorCausedByState '{config['errorCausedByState']}' is not "
                f"a state of the {kind} state."
            )
    if "mapIterationFailureCount" in config and (kind != "Map" or mock is None):
        raise validation("stateConfiguration.mapIterationFailureCount needs a mocked Map state.")
    if "mapItemReaderData" in config:
        if kind != "Map" or "ItemReader" not in state:
            raise validation("stateConfiguration.mapItemReaderData needs a Map with an ItemReader.")
        if mock is None:
            raise validation(
                "StepFlow takes stateConfiguration.mapItemReaderData with a mock only."
            )


def mock_result(mock: dict[str, Any]) -> Any:
    """The mocked result, parsed."""
    return json_member(mock["result"], "mock.result")


def json_member(text: Any, what: str) -> Any:
    """A JSON text member, parsed, or ValidationException."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        raise validation(f"{what} must be valid JSON.") from None


def _check_mock_result(result: Any, node: State, state: dict[str, Any]) -> None:
    if node.type == "Map":
        writer = "ResultWriter" in state
        if writer and not isinstance(result, dict):
            raise validation("Mocked result must be a JSON object.")
        if not writer and not isinstance(result, list):
            raise validation("Mocked result must be an array.")
    if node.type == "Parallel":
        if not isinstance(result, list):
            raise validation("Mocked result must be an array.")
        if len(result) != len(state.get("Branches") or []):
            raise validation(
                "Mocked result must contain the same number of items as number of Parallel "
                "branches."
            )


def _inner_states(state: dict[str, Any]) -> set[str]:
    """The names of every state inside a Map's processor or a Parallel's branches."""
    found: set[str] = set()
    machines = [state.get("ItemProcessor") or state.get("Iterator"), *(state.get("Branches") or [])]
    for machine in machines:
        states = machine.get("States") if isinstance(machine, dict) else None
        if isinstance(states, dict):
            for name, inner in states.items():
                found.add(name)
                if isinstance(inner, dict):
                    found |= _inner_states(inner)
    return found
