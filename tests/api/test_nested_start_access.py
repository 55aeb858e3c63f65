"""A Task's nested StartExecution is authorized as IAM authorizes it on AWS (deployed stack).

On AWS the task's role (the execution role, or the state's ``Credentials`` role) calls
StartExecution, so IAM decides whether it may start the target. StepFlow starts the
child in process (:mod:`stepflow.api.nested`); with ``STEPFLOW_NESTED_START_CHECK=iam``
(the CDK stack's stepper and runner) it asks IAM's SimulatePrincipalPolicy first
(stubbed here: moto does not implement it). Nothing is started unless IAM allows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import boto3
import pytest
from botocore.stub import Stubber
from stepflow.api.nested import ApiExecutionStarter
from stepflow.api.pass_role import IamPassRoleChecker
from stepflow.aws.settings import Settings
from stepflow.aws.wiring import build
from stepflow.integrations import IntegrationInvoker, Registry
from stepflow.integrations.catalog import with_starter
from stepflow.integrations.states import StatesStartExecution
from stepflow.runtime.clients import TaskClients
from stepflow.testing import WorkflowEnvironment

R = "arn:aws:states:::states:startExecution.sync:2"
ACCOUNT = "123456789012"
EXECUTION_ROLE = f"arn:aws:iam::{ACCOUNT}:role/StepFlowExecutionRole"  # the environment's
DEPLOYED = {
    "TABLE_NAME": "log",
    "QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/1/transitions",
    "AWS_REGION": "eu-west-1",
    "STEPFLOW_SIGNING_KEY": "test-signing-key-" + "0" * 32,
}
"""The settings of a deployed stepper (``Settings.from_environ``)."""
CHILD = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"x": 1}, "End": True}}}


@pytest.fixture
def iam() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "iam", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stub:
        yield client, stub


def simulated(stub: Stubber, role: str, machine: str, decision: str) -> None:
    """One SimulatePrincipalPolicy call the check must make, exactly so."""
    result = {
        "EvalActionName": "states:StartExecution",
        "EvalResourceName": machine,
        "EvalDecision": decision,
    }
    stub.add_response(
        "simulate_principal_policy",
        {"EvaluationResults": [result]},
        {
            "PolicySourceArn": role,  # the role's ARN with its path: no GetRole needed
            "ActionNames": ["states:StartExecution"],
            "ResourceArns": [machine],
        },
    )


def environment(client: Any) -> WorkflowEnvironment:
    """An environment whose nested starts go through the API's starter with IAM's check."""
    made: list[WorkflowEnvironment] = []
    starter = ApiExecutionStarter(
        lambda: made[0].api.executions, lambda: made[0].api.limits, IamPassRoleChecker(client)
    )
    invoker = IntegrationInvoker(with_starter(Registry(), starter), cast(TaskClients, None))
    made.append(WorkflowEnvironment(invoker=invoker, account=ACCOUNT))
    return made[0]


def parent(child: str) -> dict[str, Any]:
    task = {"Type": "Task", "Resource": R, "Parameters": {"StateMachineArn": child}, "End": True}
    return {"StartAt": "T", "States": {"T": task}}


def run_parent(env: WorkflowEnvironment, child: str, name: str) -> str:
    machine = env.register(parent(child), name)
    arn = env.start(machine, {})
    env.run(arn)
    return arn


def children(env: WorkflowEnvironment, machine: str) -> list[dict[str, Any]]:
    return list(env.api.call("ListExecutions", {"stateMachineArn": machine})["executions"])


def test_a_role_iam_allows_starts_the_child_and_the_answer_is_reused(
    iam: tuple[Any, Stubber],
) -> None:
    client, stub = iam
    env = environment(client)
    child = env.register(CHILD, "Child")
    simulated(stub, EXECUTION_ROLE, child, "allowed")  # one call for both parents
    for name in ("P1", "P2"):
        result = env.result(run_parent(env, child, name))
        assert result.status == "SUCCEEDED", result.cause
        assert json.loads(result.output or "null")["Output"] == {"x": 1}
    stub.assert_no_pending_responses()
    assert len(children(env, child)) == 2


@pytest.mark.parametrize("decision", ["implicitDeny", "explicitDeny"])
def test_a_role_iam_denies_fails_the_task_as_aws_does_and_starts_nothing(
    iam: tuple[Any, Stubber], decision: str
) -> None:
    client, stub = iam
    env = environment(client)
    child = env.register(CHILD, "Child")
    simulated(stub, EXECUTION_ROLE, child, decision)
    result = env.result(run_parent(env, child, "P"))
    assert result.error == "StepFunctions.AccessDeniedException"
    cause = result.cause or ""
    assert f"User: {EXECUTION_ROLE} is not authorized to perform: states:StartExecution" in cause
    assert child in cause
    assert children(env, child) == []
    stub.assert_no_pending_responses()


def test_a_check_iam_cannot_answer_never_allows(iam: tuple[Any, Stubber]) -> None:
    client, stub = iam
    env = environment(client)
    child = env.register(CHILD, "Child")
    stub.add_client_error("simulate_principal_policy", "Throttling", "Rate exceeded", 400)
    result = env.result(run_parent(env, child, "P"))
    assert result.error == "StepFunctions.ServiceUnavailableException"
    assert children(env, child) == []


def test_the_deployed_wiring_checks_nested_starts_only_when_told(
    iam: tuple[Any, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    env = DEPLOYED

    def check_of(settings: Settings) -> object:
        wiring = build(settings, clients={"iam": iam[0]})
        (states,) = [
            i
            for i in wiring.integrations.integrations.values()
            if isinstance(i, StatesStartExecution)
        ]
        return cast(Any, states.starter)._check

    checked = check_of(Settings.from_environ({**env, "STEPFLOW_NESTED_START_CHECK": "iam"}))
    assert isinstance(checked, IamPassRoleChecker)
    assert check_of(Settings.from_environ(env)) is None  # stepflow local, tests
    with pytest.raises(ValueError, match="STEPFLOW_NESTED_START_CHECK"):
        Settings.from_environ({**env, "STEPFLOW_NESTED_START_CHECK": "yes"})
