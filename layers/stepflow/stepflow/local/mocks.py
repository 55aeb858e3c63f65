"""``stepflow local --mock-config FILE``: Step Functions Local's mocked service integrations.

As in Step Functions Local, a StartExecution (or StartSyncExecution) whose
``stateMachineArn`` ends in ``#<TestCase>`` runs that test case of the mock
configuration (:mod:`stepflow.testing.mocks`): the suffix is taken off before the
API sees the request, and the execution's mocked Task states are answered from
the config, counted per state across the execution (Map iterations, retries and
the child executions of a distributed Map included). Executions started without
the suffix run unmocked.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

from stepflow.runtime.outcome import TaskInvoker
from stepflow.testing.mocks import MockConfig, MockConfigError, MockedTasks, TestCase, task_states

ProxyHandler = Callable[[dict[str, Any], Any], dict[str, Any]]

_STARTS = ("AWSStepFunctions.StartExecution", "AWSStepFunctions.StartSyncExecution")


class TestCases:
    """Which test case each execution started with ``#<TestCase>`` runs."""

    __test__ = False  # not a pytest test class

    def __init__(self, config: MockConfig, root_of: Callable[[str], str]) -> None:
        self.config, self.root_of = config, root_of
        self._cases: dict[tuple[str, str], TestCase] = {}
        self._lock = threading.Lock()

    def invoker(self, inner: TaskInvoker) -> MockedTasks:
        """The mock layer in front of ``inner`` (the handlers, then the integrations)."""
        return MockedTasks(self.select, inner)

    def select(self, body: dict[str, Any]) -> tuple[TestCase, str] | None:
        """The test case of the execution a task message belongs to, and its count key."""
        if not self._cases:
            return None
        arn = str(body.get("execution_arn", ""))
        root = arn.split("#")[0]
        if "/" in _machine_and_name(root)[0]:  # a distributed Map's child: read its root
            root = self.root_of(arn)
        with self._lock:
            case = self._cases.get(_machine_and_name(root))
        return None if case is None else (case, root)

    def gateway(self, handler: ProxyHandler) -> ProxyHandler:
        """``handler`` (the API's), taking ``#<TestCase>`` off the starts that name one."""

        def serve(event: dict[str, Any], context: Any) -> dict[str, Any]:
            headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
            if headers.get("x-amz-target") not in _STARTS or event.get("isBase64Encoded"):
                return handler(event, context)
            try:
                request = json.loads(event.get("body") or "{}")
            except ValueError:
                return handler(event, context)
            arn = request.get("stateMachineArn") if isinstance(request, dict) else None
            if not isinstance(arn, str) or "#" not in arn:
                return handler(event, context)
            arn, _, case_name = arn.partition("#")
            machine = arn.split(":")[6] if arn.count(":") >= 6 else ""
            try:
                case = self.config.test_case(machine, case_name)
                states = _task_states(handler, event, context, arn)
                if states is not None:
                    self.config.check_states(machine, case_name, states)
            except MockConfigError as exc:
                return _error("ValidationException", f"{exc} (from --mock-config)")
            name = request.get("name", str(uuid.uuid4()))
            if isinstance(name, str):  # else the API refuses the name, nothing starts
                with self._lock:
                    self._cases[(machine, name)] = case
            body = json.dumps({**request, "stateMachineArn": arn, "name": name})
            return handler({**event, "body": body}, context)

        return serve


def _task_states(
    handler: ProxyHandler, event: dict[str, Any], context: Any, arn: str
) -> set[str] | None:
    """The Task states of state machine ``arn``, asked of the API as the caller.

    None when the API does not describe it (unknown, or an alias): the start's own
    answer then says what is wrong, or the test case runs unchecked.
    """
    from stepflow.asl import parse

    headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() != "x-amz-target"}
    headers["X-Amz-Target"] = "AWSStepFunctions.DescribeStateMachine"
    probe = {**event, "headers": headers, "body": json.dumps({"stateMachineArn": arn})}
    answer = handler(probe, context)
    if answer.get("statusCode") != 200:
        return None
    try:
        return task_states(parse(json.loads(answer["body"])["definition"]))
    except Exception:  # a definition the API stored parses; anything else: unchecked
        return None


def _machine_and_name(execution_arn: str) -> tuple[str, str]:
    """``(state machine, execution name)`` of an execution (or express execution) ARN."""
    parts = execution_arn.split(":")
    return (parts[6], parts[7]) if len(parts) > 7 else ("", "")


def _error(kind: str, message: str) -> dict[str, Any]:
    """An API error response, as the Step Functions API answers one."""
    return {
        "statusCode": 400,
        "headers": {"Content-Type": "application/x-amz-json-1.0"},
        "body": json.dumps({"__type": kind, "message": message}),
    }
