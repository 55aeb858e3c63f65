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

from stepflow.runtime.arns import machine_name, parse_arn
from stepflow.runtime.outcome import TaskInvoker
from stepflow.testing.mocks import MockConfig, MockConfigError, MockedTasks, TestCase, task_states

ProxyHandler = Callable[[dict[str, Any], Any], dict[str, Any]]

_STARTS = ("AWSStepFunctions.StartExecution", "AWSStepFunctions.StartSyncExecution")


class TestCases:
    """Which test case each execution started with ``#<TestCase>`` runs.

    A case is kept under the execution's ARN (region, account, machine and name)
    while that execution may run: a start the API refuses keeps nothing, a start
    answering an execution that exists already (idempotent, or refused) changes
    nothing, and an execution's case and call counts are dropped once it has ended
    (looked up with ``status_of`` at the next start). A StartSyncExecution's case
    lasts for its request: the execution runs to its end within it.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        config: MockConfig,
        root_of: Callable[[str], str],
        status_of: Callable[[str], str | None] = lambda arn: None,
    ) -> None:
        self.config, self.root_of, self.status_of = config, root_of, status_of
        self._cases: dict[str, TestCase] = {}
        self._mocked: list[MockedTasks] = []
        self._lock = threading.Lock()

    def invoker(self, inner: TaskInvoker) -> MockedTasks:
        """The mock layer in front of ``inner`` (the handlers, then the integrations)."""
        mocked = MockedTasks(self.select, inner)
        self._mocked.append(mocked)
        return mocked

    def select(self, body: dict[str, Any]) -> tuple[TestCase, str] | None:
        """The test case of the execution a task message belongs to, and its count key."""
        if not self._cases:
            return None
        arn = str(body.get("execution_arn", ""))
        root = arn.split("#")[0]
        if "/" in machine_name(root):  # a distributed Map's child: read its root
            root = self.root_of(arn)
        with self._lock:
            case = self._cases.get(root)
        return None if case is None else (case, root)

    def running(self) -> list[str]:
        """The executions a test case is kept for (those not seen ending yet)."""
        with self._lock:
            return list(self._cases)

    def gateway(self, handler: ProxyHandler) -> ProxyHandler:
        """``handler`` (the API's), taking ``#<TestCase>`` off the starts that name one."""

        def serve(event: dict[str, Any], context: Any) -> dict[str, Any]:
            headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
            target = headers.get("x-amz-target")
            if target not in _STARTS or event.get("isBase64Encoded"):
                return handler(event, context)
            try:
                request = json.loads(event.get("body") or "{}")
            except ValueError:
                return handler(event, context)
            arn = request.get("stateMachineArn") if isinstance(request, dict) else None
            if not isinstance(arn, str) or "#" not in arn:
                return handler(event, context)
            arn, _, case_name = arn.partition("#")
            machine = machine_name(arn)
            try:
                case = self.config.test_case(machine, case_name)
                states = _task_states(handler, event, context, arn)
                if states is not None:
                    self.config.check_states(machine, case_name, states)
            except MockConfigError as exc:
                return _error("ValidationException", f"{exc} (from --mock-config)")
            name = request.get("name", str(uuid.uuid4()))
            body = json.dumps({**request, "stateMachineArn": arn, "name": name})
            forward = {**event, "body": body}
            parsed = parse_arn(arn)
            if not isinstance(name, str) or parsed is None:  # the API refuses it: nothing starts
                return handler(forward, context)
            scope = f"arn:aws:states:{parsed.region}:{parsed.account}"
            execution = f"{scope}:execution:{machine}:{name}"
            if target == _STARTS[1]:  # runs to its end within the request
                kept = self._keep(execution, case)
                try:
                    return handler(forward, context)
                finally:
                    if kept:
                        self._drop(execution)
            if self.status_of(execution) is not None:  # exists: no new execution starts
                return handler(forward, context)
            self._prune()
            kept = self._keep(execution, case)  # before the answer: its first task may run first
            answer: dict[str, Any] | None = None
            try:
                answer = handler(forward, context)
                started = _started_arn(answer)
                if kept and started is not None and started != execution:
                    self._keep(started, case)  # the API named it otherwise: keyed as answered
                    self._drop(execution)
                return answer
            finally:
                if kept and (answer is None or answer.get("statusCode") != 200):
                    self._drop(execution)

        return serve

    def _keep(self, execution: str, case: TestCase) -> bool:
        """Keep ``case`` for ``execution``; False if another start keeps one for it already."""
        with self._lock:
            if execution in self._cases:
                return False
            self._cases[execution] = case
            return True

    def _prune(self) -> None:
        """Drop the cases, and call counts, of the executions that have ended."""
        for execution in self.running():
            status = self.status_of(execution)
            if status is not None and status != "RUNNING":
                self._drop(execution)

    def _drop(self, execution: str) -> None:
        with self._lock:
            self._cases.pop(execution, None)
        for mocked in self._mocked:
            mocked.forget(execution)


def _task_states(
    handler: ProxyHandler, event: dict[str, Any], context: Any, arn: str
) -> dict[str, str] | None:
    """The Task states (-> resources) of state machine ``arn``, asked of the API as the caller.

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


def _started_arn(answer: dict[str, Any]) -> str | None:
    """The ``executionArn`` of a successful StartExecution answer (None otherwise)."""
    if answer.get("statusCode") != 200:
        return None
    try:
        arn = json.loads(answer.get("body") or "{}").get("executionArn")
    except (ValueError, AttributeError):
        return None
    return arn if isinstance(arn, str) else None


def _error(kind: str, message: str) -> dict[str, Any]:
    """An API error response, as the Step Functions API answers one."""
    return {
        "statusCode": 400,
        "headers": {"Content-Type": "application/x-amz-json-1.0"},
        "body": json.dumps({"__type": kind, "message": message}),
    }
