"""TestState's members beyond the input: mocks, inspection levels, variables, context.

The request is checked first (:mod:`stepflow.api.test_state_checks`).

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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stepflow.asl.states.base import MISSING, State
from stepflow.data.budget import UNLIMITED, Budget
from stepflow.data.serialize import dumps
from stepflow.engine import dataflow
from stepflow.engine.failures import matches
from stepflow.engine.model import ExecutionState, Frame
from stepflow.engine.pipeline import build, place, select
from stepflow.errors import StatesError, StatesErrorName

NUMBERS = frozenset({"maxConcurrency", "toleratedFailureCount", "toleratedFailurePercentage"})
"""The inspection data members that are numbers; the others are JSON text."""
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
    name: str, variables: dict[str, Any], taken: set[str], *, jsonata: bool = False
) -> tuple[str, dict[str, Any]]:
    """A Pass state that assigns ``variables`` and goes on to ``name``, its input unchanged.

    TestState runs it first so that the tested state sees the variables. Their
    values are written as literals: in JSONPath unless one holds a key ending in
    ``.$`` (or the machine is ``jsonata``), in JSONata unless one holds a
    ``{% ... %}`` string, both of which those languages would evaluate; failing
    both, as JSONata expressions (numbers then as doubles).
    """
    label = "StepFlowTestStateVariables"
    while label in taken:
        label += "_"
    state: dict[str, Any] = {"Type": "Pass", "Next": name}
    values = list(variables.values())
    if not jsonata and not any(_found(v, _path_key) for v in values):
        state.update(QueryLanguage="JSONPath", Assign=dict(variables))
    elif not any(_found(v, _expression) for v in values):
        state.update(QueryLanguage="JSONata", Assign=dict(variables))
    else:
        written = {
            k: "{% " + json.dumps(v, ensure_ascii=False) + " %}" for k, v in variables.items()
        }
        state.update(QueryLanguage="JSONata", Assign=written)
    return label, state


def _path_key(value: Any, key: str | None) -> bool:
    return key is not None and key.endswith(".$")


def _expression(value: Any, key: str | None) -> bool:
    return isinstance(value, str) and value.startswith("{%") and value.endswith("%}")


def _found(value: Any, test: Callable[[Any, str | None], bool], key: str | None = None) -> bool:
    """Whether ``test`` holds for ``value`` (under ``key``) or anything inside it."""
    if test(value, key):
        return True
    if isinstance(value, dict):
        return any(_found(v, test, k) for k, v in value.items())
    if isinstance(value, list):
        return any(_found(item, test) for item in value)
    return False


def inspection_data(inspection: dict[str, Any]) -> dict[str, Any]:
    """``inspection`` in the response's shape: JSON text, except the Map's numbers."""
    return {k: v if k in NUMBERS else dumps(v) for k, v in inspection.items()}
