"""Operations that run a definition in process: StartSyncExecution, TestState, validation.

Both run in a :class:`~stepflow.testing.WorkflowEnvironment`: the durable
runtime's Stepper on in-memory ports with a virtual clock (a Wait returns at
once) and the service's own task invoker: the semantics are the durable ones,
not a copy.
"""

from __future__ import annotations

import copy
import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from stepflow.api.arns import check_name
from stepflow.api.errors import ApiError, validation
from stepflow.api.http_trace import http_trace
from stepflow.api.machines import Machines, parse_json
from stepflow.api.test_state import (
    default_context,
    evaluate,
    inspect_only,
    inspection_data,
    merge_context,
    variables_state,
)
from stepflow.api.test_state_checks import check_request, json_member, mock_result
from stepflow.asl import DefinitionError, StateMachine, parse
from stepflow.asl.states.base import MISSING, State
from stepflow.data.serialize import dumps
from stepflow.engine.codec import decode_state
from stepflow.engine.context import iso
from stepflow.integrations.validation import validate_definition
from stepflow.limits import DEFAULT_LIMITS, Limits
from stepflow.runtime import ExecutionRecord, TaskInvoker
from stepflow.testing import WorkflowEnvironment

_TASK_RESULTS = {
    "TaskSucceeded": "taskSucceededEventDetails",
    "LambdaFunctionSucceeded": "lambdaFunctionSucceededEventDetails",
    "ActivitySucceeded": "activitySucceededEventDetails",
}
"""The events that carry a Task's raw result, and their details key."""

MAX_EVENTS = 100_000
"""The largest event cap of a synchronous run: past it (or past a lower configured
``Limits.max_events_per_execution``) the execution fails with ``States.Runtime``."""


class Synchronous:
    """StartSyncExecution, TestState and ValidateStateMachineDefinition."""

    def __init__(
        self,
        machines: Machines,
        invoker: TaskInvoker,
        clock: Callable[[], float],
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.machines, self.invoker, self.clock = machines, invoker, clock
        self.limits = limits

    def start_sync_execution(self, p: dict[str, Any]) -> dict[str, Any]:
        """Run an EXPRESS state machine to its end and return the outcome."""
        target = self.machines.resolve(p["stateMachineArn"])
        name = self.machines.scope.parse_machine(target)[0]
        head = self.machines.head(self.machines.scope.machine_arn(name))
        if head["type"] != "EXPRESS":
            raise ApiError(
                "StateMachineTypeNotSupported", "StartSyncExecution needs an EXPRESS state machine"
            )
        text = self.machines.registry.definition(target)
        if text is None:
            raise ApiError("StateMachineDoesNotExist", f"no definition for {target}")
        execution = p.get("name") or uuid.uuid4().hex
        check_name(execution, "execution name")
        input_text = p.get("input", "{}")
        value = parse_json(input_text, "input")
        role = self.machines.role_of(target)
        record, _ = self._run(parse(text), target, execution, value, role)
        state = decode_state(record.state)
        prefix = self.machines.scope.prefix
        result: dict[str, Any] = {
            "executionArn": f"{prefix}:express:{name}:{execution}:{uuid.uuid4()}",
            "stateMachineArn": self.machines.scope.machine_arn(name),
            "name": execution,
            "startDate": record.start_date,
            "stopDate": record.stop_date if record.stop_date is not None else self.clock(),
            "status": record.status,
            "input": input_text,
            "inputDetails": {"included": True},
            "billingDetails": {"billedMemoryUsedInMB": 64, "billedDurationInMilliseconds": 100},
        }
        if record.status == "SUCCEEDED":
            result["output"] = dumps(state.output)
            result["outputDetails"] = {"included": True}
        else:
            result.update(_failure(state.error, state.cause))
        return result

    def test_state(self, p: dict[str, Any]) -> dict[str, Any]:
        """TestState: run one state on an input and report its output and next state.

        A mocked state is evaluated without running anything; see
        :mod:`stepflow.api.test_state` for the members and their checks.
        """
        name, machine = _single_state(p["definition"], p.get("stateName"))
        value = parse_json(p.get("input", "{}"), "input")
        try:
            parsed = parse(machine)
        except DefinitionError as exc:
            raise ApiError(
                "InvalidDefinition", f"Invalid State Definition: '{exc.one_line()}'"
            ) from None
        node = parsed.root.states[name]
        check_request(p, machine["States"][name], node)
        level = p.get("inspectionLevel") or "INFO"
        given = p.get("variables")
        variables = json_member(given, "variables") if given is not None else {}
        scope = self.machines.scope
        arn = scope.machine_arn("TestState")
        execution = uuid.uuid4().hex
        context = default_context(
            execution_arn=scope.execution_arn("TestState", execution),
            machine_arn=arn,
            role=p.get("roleArn") or "",
            value=value,
            state=name,
            now=iso(self.clock()),
        )
        mock = p.get("mock")
        if mock is not None:
            if p.get("context") is not None:
                context = merge_context(context, json_member(p["context"], "context"))
            config = p.get("stateConfiguration") or {}
            errors = mock.get("errorOutput")
            outcome = evaluate(
                node,
                value,
                context=context,
                variables=variables,
                result=mock_result(mock) if "result" in mock else MISSING,
                error=None if errors is None else (errors["error"], errors.get("cause")),
                retry_count=int(config.get("retrierRetryCount") or 0),
                failed_iterations=config.get("mapIterationFailureCount"),
            )
            return outcome.response(level)
        first = None
        if variables:
            jsonata = machine.get("QueryLanguage") == "JSONata"
            first, pre = variables_state(name, variables, set(machine["States"]), jsonata=jsonata)
            machine = {**machine, "StartAt": first, "States": {**machine["States"], first: pre}}
            try:
                parsed = parse(machine)
            except DefinitionError as exc:
                raise validation(f"variables cannot be assigned: {exc}") from None
        record, history = self._run(parsed, arn, execution, value, p.get("roleArn"))
        state = decode_state(record.state)
        result: dict[str, Any] = {}
        entered = [e for e in history if e["type"].endswith("StateEntered")]
        stub = next(
            (e for e in entered if e["stateEnteredEventDetails"]["name"] not in (name, first)),
            None,
        )
        if stub is not None:
            result["nextState"] = stub["stateEnteredEventDetails"]["name"]
            result["output"] = stub["stateEnteredEventDetails"].get("input", "null")
            error = _caught_error([e for e in history if e["id"] < stub["id"]])
            result["status"] = "CAUGHT_ERROR" if error else "SUCCEEDED"
            result.update(error)
        elif record.status == "SUCCEEDED":
            result.update(status="SUCCEEDED", output=dumps(state.output))
        else:
            result.update(status="FAILED", **_failure(state.error, state.cause))
        if level in ("DEBUG", "TRACE"):
            raw = _raw_result(node, history)
            data = inspect_only(node, value, context=context, variables=variables, result=raw)
            sent = _sent_parameters(node, history)
            if (
                node.type == "Pass"
                and getattr(node, "parameters", None) is not None
                and getattr(node, "result", MISSING) is MISSING
            ):
                sent = raw  # a Pass's result is its effective input: what the run computed
            for key in ("afterParameters", "afterArguments"):
                if key in data and sent is not MISSING:
                    data[key] = sent  # what the run sent, not a second evaluation's
            result["inspectionData"] = inspection_data(data)
            if level == "TRACE":
                effective = data.get("afterParameters", data.get("afterArguments"))
                resource = machine["States"][name].get("Resource")
                trace = http_trace(resource, effective, raw, scope.region)
                result["inspectionData"].update(trace)
        return result

    def validate_state_machine_definition(self, p: dict[str, Any]) -> dict[str, Any]:
        """The engine's diagnostics in the ValidateStateMachineDefinition shape."""
        severity = p.get("severity", "ERROR")
        if severity not in ("ERROR", "WARNING"):
            raise validation("severity must be ERROR or WARNING")
        found = validate_definition(p["definition"], machine_type=p.get("type", "STANDARD"))
        shown = [d for d in found if severity == "WARNING" or d.severity == "ERROR"]
        limit = p.get("maxResults") or 100
        return {
            "result": "FAIL" if any(d.severity == "ERROR" for d in found) else "OK",
            "diagnostics": [d.to_dict() for d in shown[:limit]],
            "truncated": len(shown) > limit,
        }

    def _run(
        self, machine: StateMachine, arn: str, name: str, value: Any, role: str | None
    ) -> tuple[ExecutionRecord, list[dict[str, Any]]]:
        """Run the execution in a test environment over the service's task invoker.

        It runs with ``role``, the state machine's (TestState's ``roleArn``).
        It runs until it ends or nothing more can happen without outside input
        (a callback nobody answers); one still RUNNING is stopped with
        ``States.Timeout``, one whose history reaches its cap fails.
        """
        region, account = self.machines.scope.region, self.machines.scope.account
        env = WorkflowEnvironment(
            invoker=self.invoker,
            start_time=self.clock(),
            region=region,
            account=account,
            max_events=min(MAX_EVENTS, self.limits.max_events_per_execution),
            limits=self.limits,
        )
        env.register(machine, self.machines.scope.parse_machine(arn)[0])
        execution = env.start(arn, value, name=name, seed=secrets.randbits(63), role_arn=role)
        env.run(execution, skip_open_tasks=True)
        record = env.log.get(execution)
        assert record is not None
        if record.status == "RUNNING":
            env.stop(execution, error="States.Timeout", cause="the execution ran too long")
            stopped = env.log.get(execution) or record
            record = replace(stopped, status="TIMED_OUT")  # a sync run ends in one of three
        return record, env.history(execution)


def _single_state(definition: str, state_name: str | None) -> tuple[str, dict[str, Any]]:
    """A machine that runs one state, each of its successors stubbed by an ending Pass."""
    raw = parse_json_definition(definition)
    language = raw.get("QueryLanguage")
    if state_name is not None:
        states = raw.get("States")
        if not isinstance(states, dict) or not isinstance(states.get(state_name), dict):
            raise ApiError("InvalidDefinition", f"no state named {state_name!r}")
        state, name = copy.deepcopy(states[state_name]), state_name
    else:
        state, name, language = raw, "TestState", None
    targets = [state.get("Next"), state.get("Default")]
    for key in ("Choices", "Catch"):
        rules = state.get(key)
        if isinstance(rules, list):
            targets.extend(rule.get("Next") for rule in rules if isinstance(rule, dict))
    stubs = {t: {"Type": "Pass", "End": True} for t in targets if isinstance(t, str) and t != name}
    machine: dict[str, Any] = {"StartAt": name, "States": {name: state, **stubs}}
    if language is not None:
        machine["QueryLanguage"] = language
    return name, machine


def parse_json_definition(definition: str) -> dict[str, Any]:
    """The definition as a JSON object, or InvalidDefinition."""
    try:
        raw = json.loads(definition)
    except ValueError:
        raw = None
    if not isinstance(raw, dict):
        raise ApiError("InvalidDefinition", "the definition must be a JSON object")
    return raw


def _raw_result(node: State, history: list[dict[str, Any]]) -> Any:
    """The raw result of the tested Task (its last TaskSucceeded) or Pass, else MISSING."""
    if node.type == "Pass" and getattr(node, "result", MISSING) is not MISSING:
        return node.result  # type: ignore[attr-defined]
    if node.type == "Pass":
        return _pass_result(node, history)
    if node.type != "Task":
        return MISSING
    for event in reversed(history):
        if event["type"] in _TASK_RESULTS:
            details = event[_TASK_RESULTS[event["type"]]]
            return json.loads(details.get("output", "null"))
    return MISSING


def _pass_result(node: State, history: list[dict[str, Any]]) -> Any:
    """What a JSONPath Pass without ``Result`` produced in the run, read from its output.

    Its effective input (``Parameters`` applied) is its result: evaluating the template
    again could give another value (``States.UUID()``, ``States.MathRandom``). It can be
    read back when ``OutputPath`` kept the whole output and ``ResultPath`` is a reference
    path; otherwise MISSING (the DEBUG data is then evaluated again).
    """
    if getattr(node, "query_language", "JSONPath") == "JSONata":
        return MISSING
    placed, kept = getattr(node, "result_path", None), getattr(node, "output_path", None)
    if placed is None or not placed.is_reference or kept is None or kept.steps != ():
        return MISSING
    for event in reversed(history):
        details = event.get("stateExitedEventDetails")
        if event["type"] == "PassStateExited" and details and details.get("name") == node.name:
            try:
                return placed.find(json.loads(details.get("output", "null")))
            except LookupError:
                return MISSING
    return MISSING


def _sent_parameters(node: State, history: list[dict[str, Any]]) -> Any:
    """The parameters the tested Task's last attempt was scheduled with, else MISSING."""
    if node.type != "Task":
        return MISSING
    for event in reversed(history):
        details = event.get("taskScheduledEventDetails")
        if event["type"] == "TaskScheduled" and isinstance(details, dict):
            return json.loads(details.get("parameters", "null"))
    return MISSING


def _failure(error: str | None, cause: str | None) -> dict[str, str]:
    return {k: v for k, v in (("error", error), ("cause", cause)) if v is not None}


def _caught_error(history: list[dict[str, Any]]) -> dict[str, str]:
    """The error of the state's last attempt if it failed (and was caught), else empty."""
    error: dict[str, str] = {}
    for event in history:
        if event["type"].endswith("Succeeded"):
            error = {}
        for value in event.values():
            if isinstance(value, dict) and "error" in value:
                error = _failure(value.get("error"), value.get("cause"))
    return error
