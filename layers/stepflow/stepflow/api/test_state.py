"""TestState's members beyond the input: mocks, inspection levels, variables, context.

The request is checked first, with AWS's errors (``ValidationException``
unless said otherwise):

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
  read items from it).

A mocked state is evaluated here, without running anything, through the
engine's own data-flow functions (:mod:`stepflow.engine.dataflow`): the mock
is the state's raw result or error; Retry is decided, not run (``RETRIABLE``
with the retrier's index and backoff while ``retrierRetryCount`` is below its
``MaxAttempts``), then Catch (``CAUGHT_ERROR``) or ``FAILED``.
``mapIterationFailureCount`` over the Map's tolerated failures fails it with
``States.ExceedToleratedFailureThreshold``. ``$$`` is ``context`` merged over
the default context object.

``inspectionLevel`` DEBUG and TRACE add ``inspectionData``: the input,
``afterInputPath``, ``afterParameters`` (JSONPath) or ``afterArguments``
(JSONata), the raw ``result``, ``afterResultSelector``, ``afterResultPath``,
the ``variables`` after the state, ``errorDetails``, and for a Map
``afterItemsPath``, ``maxConcurrency`` and its tolerated failures.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from stepflow.api.errors import validation
from stepflow.api.mock_results import check_mock_result
from stepflow.asl.states.base import MISSING, State
from stepflow.data.budget import UNLIMITED, Budget
from stepflow.data.serialize import dumps
from stepflow.engine import dataflow
from stepflow.engine.failures import matches
from stepflow.engine.model import ExecutionState, Frame
from stepflow.engine.pipeline import build, place, select
from stepflow.errors import StatesError, StatesErrorName

MOCKABLE = ("Task", "Map", "Parallel")
NUMBERS = frozenset({"maxConcurrency", "toleratedFailureCount", "toleratedFailurePercentage"})
"""The inspection data members that are numbers; the others are JSON text."""
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,79}")
THRESHOLD_CAUSE = "The specified tolerated failure threshold was exceeded"


@dataclass(slots=True)
class Outcome:
    """What TestState answers about one evaluated state (``inspection``: DEBUG data)."""

    status: str
    output: Any = MISSING
    next_state: str | None = None
    error: str | None = None
    cause: str | None = None
    inspection: dict[str, Any] = field(default_factory=dict)
    error_details: dict[str, Any] = field(default_factory=dict)

    def response(self, level: str) -> dict[str, Any]:
        """The TestState response at inspection ``level``."""
        result: dict[str, Any] = {"status": self.status}
        if self.output is not MISSING:
            result["output"] = dumps(self.output)
        if self.next_state is not None:
            result["nextState"] = self.next_state
        result.update({k: v for k, v in (("error", self.error), ("cause", self.cause)) if v})
        if level in ("DEBUG", "TRACE"):
            data = inspection_data(self.inspection)
            if self.error_details:
                data["errorDetails"] = self.error_details
            result["inspectionData"] = data
        return result


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


class _Eval:
    """The engine's evaluation context for one state: a fixed context object, no budget."""

    def __init__(self, state: ExecutionState, context: dict[str, Any]) -> None:
        self._state, self._context = state, context

    @property
    def state(self) -> ExecutionState:
        return self._state

    def context(self, frame: Frame, **extra: Any) -> dict[str, Any]:
        return self._context

    @property
    def time_budget(self) -> Budget:
        return UNLIMITED


def evaluate(
    node: State,
    value: Any,
    *,
    context: dict[str, Any],
    variables: dict[str, Any],
    result: Any = MISSING,
    error: tuple[str, str | None] | None = None,
    retry_count: int = 0,
    failed_iterations: int | None = None,
) -> Outcome:
    """Evaluate ``node`` on ``value`` given its raw ``result`` or its ``error``."""
    execution = ExecutionState("", "", "", "", "", "", value)
    frame = Frame("root", "", node.name, value, variables=dict(variables), retry_count=retry_count)
    execution.frames[frame.id] = frame
    d = _Eval(execution, context)
    inspection: dict[str, Any] = {"input": value}
    if variables:
        inspection["variables"] = variables
    try:
        _inspect_input(d, frame, node, inspection)
        if error is None and failed_iterations is not None:
            error = _map_threshold(node, result, failed_iterations)
        if error is None:
            return _succeeded(d, frame, node, result, inspection)
    except StatesError as exc:
        error = (exc.error, exc.cause)
    assert error is not None
    return _failed(d, frame, node, error, retry_count, inspection)


def _inspect_input(d: _Eval, frame: Frame, node: State, inspection: dict[str, Any]) -> None:
    if dataflow.is_jsonata(node):
        if getattr(node, "arguments", MISSING) is not MISSING:
            inspection["afterArguments"] = dataflow.effective_input(d, frame, node)
    else:
        after = select(node.input_path, dataflow.scope(d, frame, frame.input))
        inspection["afterInputPath"] = after
        template = getattr(node, "parameters", None)
        if template is not None:
            inspection["afterParameters"] = build(template, dataflow.scope(d, frame, after))
        if node.type == "Map" and getattr(node, "items_path", None) is not None:
            inspection["afterItemsPath"] = select(node.items_path, dataflow.scope(d, frame, after))  # type: ignore[attr-defined]
    if node.type == "Map":
        for key, attribute in (
            ("maxConcurrency", "max_concurrency"),
            ("toleratedFailureCount", "tolerated_failure_count"),
            ("toleratedFailurePercentage", "tolerated_failure_percentage"),
        ):
            number = getattr(node, attribute, None)
            if isinstance(number, int | float) and not isinstance(number, bool):
                inspection[key] = number


def _map_threshold(node: State, result: Any, failed: int) -> tuple[str, str | None] | None:
    """The Map's error when ``failed`` iterations exceed what it tolerates, else None."""
    count = getattr(node, "tolerated_failure_count", None)
    percentage = getattr(node, "tolerated_failure_percentage", None)
    total = len(result) if isinstance(result, list) else 0
    within = (isinstance(count, int) and failed <= count) or (
        isinstance(percentage, int | float) and total > 0 and failed * 100 <= percentage * total
    )
    if failed == 0 or within:
        return None
    return StatesErrorName.EXCEED_TOLERATED_FAILURE_THRESHOLD.value, THRESHOLD_CAUSE


def _succeeded(
    d: _Eval, frame: Frame, node: State, result: Any, inspection: dict[str, Any]
) -> Outcome:
    inspection["result"] = result
    if not dataflow.is_jsonata(node):
        selector = getattr(node, "result_selector", None)
        selected = result if selector is None else build(selector, dataflow.scope(d, frame, result))
        if selector is not None:
            inspection["afterResultSelector"] = selected
        inspection["afterResultPath"] = place(
            getattr(node, "result_path", None), frame.input, selected
        )
    output, assigned = dataflow.result_output(d, frame, node, result)
    if assigned:
        inspection["variables"] = {**frame.variables, **assigned}
    return Outcome("SUCCEEDED", output, node.next, inspection=inspection)


def _failed(
    d: _Eval,
    frame: Frame,
    node: State,
    error: tuple[str, str | None],
    retry_count: int,
    inspection: dict[str, Any],
) -> Outcome:
    name, cause = error
    for index, retrier in enumerate(getattr(node, "retry", ())):
        if matches(retrier.error_equals, name):
            if retry_count < retrier.max_attempts:
                details = {
                    "retryIndex": index,
                    "retryBackoffIntervalSeconds": int(retrier.delay(retry_count)),
                }
                return Outcome("RETRIABLE", MISSING, None, name, cause, inspection, details)
            break
    for index, catcher in enumerate(getattr(node, "catch", ())):
        if matches(catcher.error_equals, name):
            output = dataflow.error_output(name, cause)
            try:
                caught, assigned = dataflow.catch_output(d, frame, node, catcher, output)
            except StatesError as exc:
                return Outcome("FAILED", error=exc.error, cause=exc.cause, inspection=inspection)
            if assigned:
                inspection["variables"] = {**frame.variables, **assigned}
            details = {"catchIndex": index}
            return Outcome("CAUGHT_ERROR", caught, catcher.next, name, cause, inspection, details)
    return Outcome("FAILED", error=name, cause=cause, inspection=inspection)


def default_context(
    *, execution_arn: str, machine_arn: str, role: str, value: Any, state: str, now: str
) -> dict[str, Any]:
    """The context object a tested state sees when the request gives none."""
    return {
        "Execution": {
            "Id": execution_arn,
            "Input": value,
            "Name": execution_arn.rsplit(":", 1)[-1],
            "RoleArn": role,
            "StartTime": now,
            "RedriveCount": 0,
        },
        "StateMachine": {"Id": machine_arn, "Name": machine_arn.rsplit(":", 1)[-1]},
        "State": {"EnteredTime": now, "Name": state, "RetryCount": 0},
    }


def merge_context(base: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``given`` over ``base``, object by object."""
    merged = dict(base)
    for key, value in given.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_context(merged[key], value)
        else:
            merged[key] = value
    return merged


def inspect_only(
    node: State, value: Any, *, context: dict[str, Any], variables: dict[str, Any], result: Any
) -> dict[str, Any]:
    """DEBUG data of a state the engine ran (``result``: its raw result, if known).

    A JSONPath Pass without ``Result`` has its effective input as its result.
    """
    execution = ExecutionState("", "", "", "", "", "", value)
    frame = Frame("root", "", node.name, value, variables=dict(variables))
    execution.frames[frame.id] = frame
    inspection: dict[str, Any] = {"input": value}
    if variables:
        inspection["variables"] = variables
    with contextlib.suppress(StatesError):  # the run reported the failure
        _inspect_input(_Eval(execution, context), frame, node, inspection)
        if result is MISSING and node.type == "Pass" and not dataflow.is_jsonata(node):
            result = inspection.get("afterParameters", inspection["afterInputPath"])
    if result is MISSING:
        return inspection
    return evaluate(node, value, context=context, variables=variables, result=result).inspection


def variables_state(
    name: str, variables: dict[str, Any], taken: set[str]
) -> tuple[str, dict[str, Any]]:
    """A Pass state that assigns ``variables`` and goes on to ``name``, its input unchanged.

    TestState runs it first so that the tested state sees the variables. The values
    are literal JSONPath ``Assign`` values (exact), unless one holds a key ending in
    ``.$``, which JSONPath would evaluate: then JSONata literals (numbers as doubles).
    """
    label = "StepFlowTestStateVariables"
    while label in taken:
        label += "_"
    state: dict[str, Any] = {"Type": "Pass", "Next": name}
    if any(_has_path_key(value) for value in variables.values()):
        state["QueryLanguage"] = "JSONata"
        state["Assign"] = {
            key: "{% " + json.dumps(value, ensure_ascii=False) + " %}"
            for key, value in variables.items()
        }
    else:
        state["QueryLanguage"] = "JSONPath"
        state["Assign"] = dict(variables)
    return label, state


def _has_path_key(value: Any) -> bool:
    if isinstance(value, dict):
        return any(k.endswith(".$") or _has_path_key(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_path_key(item) for item in value)
    return False


def inspection_data(inspection: dict[str, Any]) -> dict[str, Any]:
    """``inspection`` in the response's shape: JSON text, except the Map's numbers."""
    return {k: v if k in NUMBERS else dumps(v) for k, v in inspection.items()}
