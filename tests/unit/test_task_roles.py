"""The role each task call runs with: the state's ``Credentials.RoleArn``, else the execution's.

The engine only names the role (in the task message); the edge assumes it
(see tests/integration/test_role_clients.py).
"""

from __future__ import annotations

from typing import Any

from stepflow.runtime.outcome import TaskOutcome
from stepflow.testing import WorkflowEnvironment

FN = "arn:aws:lambda:us-east-1:123456789012:function:work"
ROLE = "arn:aws:iam::123456789012:role/stepflow/OrderRole"
EXECUTION_ROLE = "arn:aws:iam::123456789012:role/StepFlowExecutionRole"


class Capture:
    """A task invoker that records each task message body and succeeds."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any]) -> TaskOutcome:
        self.bodies.append(body)
        return TaskOutcome.succeeded({"ok": True})


def _task(**fields: Any) -> dict[str, Any]:
    return {
        "StartAt": "T",
        "States": {"T": {"Type": "Task", "Resource": FN, "End": True, **fields}},
    }


def _run(definition: dict[str, Any], data: Any = None) -> tuple[Capture, Any]:
    capture = Capture()
    env = WorkflowEnvironment(invoker=capture)
    arn = env.start(definition, data)
    env.run(arn)
    return capture, env.result(arn)


def test_without_credentials_the_task_runs_with_the_executions_role() -> None:
    capture, result = _run(_task())
    assert result.status == "SUCCEEDED"
    assert [(b["role_arn"], b["execution_role"]) for b in capture.bodies] == [
        (EXECUTION_ROLE, EXECUTION_ROLE)
    ]


def test_a_literal_role_arn_is_used() -> None:
    capture, _ = _run(_task(Credentials={"RoleArn": ROLE}))
    assert [(b["role_arn"], b["execution_role"]) for b in capture.bodies] == [
        (ROLE, EXECUTION_ROLE)
    ]


def test_a_role_arn_path_is_read_from_the_states_input_before_input_path() -> None:
    definition = _task(Credentials={"RoleArn.$": "$.role"}, InputPath="$.payload")
    capture, _ = _run(definition, {"role": ROLE, "payload": {"x": 1}})
    assert [(b["role_arn"], b["execution_role"]) for b in capture.bodies] == [
        (ROLE, EXECUTION_ROLE)
    ]
    assert capture.bodies[0]["input"] == {"x": 1}


def test_a_jsonata_role_arn_is_evaluated_on_the_states_input() -> None:
    role = "{% 'arn:aws:iam::' & $states.input.account & ':role/stepflow/OrderRole' %}"
    definition = _task(QueryLanguage="JSONata", Credentials={"RoleArn": role})
    capture, _ = _run(definition, {"account": "123456789012"})
    assert [(b["role_arn"], b["execution_role"]) for b in capture.bodies] == [
        (ROLE, EXECUTION_ROLE)
    ]


def test_a_role_arn_that_is_not_a_string_fails_the_execution_without_calling() -> None:
    capture, result = _run(_task(Credentials={"RoleArn.$": "$.role"}), {"role": 42})
    assert capture.bodies == []
    assert result.status == "FAILED"
    assert result.error == "States.Runtime"
    assert "RoleArn" in (result.cause or "")
