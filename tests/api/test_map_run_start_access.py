"""A distributed Map's children are started as AWS starts them: by the execution's role.

AWS needs ``states:StartExecution`` on the state machine itself in the execution role
("IAM policies for using Distributed Map states"); without it the execution fails at the
Map. With ``STEPFLOW_NESTED_START_CHECK=iam`` (the deployed stack) the stepper asks IAM
once, when the run is created (IAM stubbed: moto has no SimulatePrincipalPolicy).
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.stub import Stubber
from stepflow.api.pass_role import IamPassRoleChecker, MapRunStarts, PassRoleCheckError
from stepflow.aws.settings import Settings
from stepflow.aws.wiring import build
from stepflow.testing import WorkflowEnvironment
from stepflow.testing.delivery import DeliveryError

from tests.api.test_nested_start_access import ACCOUNT, DEPLOYED, EXECUTION_ROLE, iam, simulated

__all__ = ["iam"]

BODY = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
MACHINE = f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:Fan"


def fan_out(mode: str = "DISTRIBUTED", kind: str = "STANDARD") -> dict[str, Any]:
    processor = {**BODY, "ProcessorConfig": {"Mode": mode, "ExecutionType": kind}}
    return {
        "StartAt": "M",
        "States": {"M": {"Type": "Map", "ItemProcessor": processor, "End": True}},
    }


class Grants:
    """The check's stand-in: which (role, machine) pairs may start; every question counted."""

    def __init__(self, *allowed: tuple[str, str], error: Exception | None = None) -> None:
        self.allowed, self.asked, self.error = set(allowed), list[tuple[str, str]](), error

    def may_start(self, principal: str, machine_arn: str) -> bool:
        self.asked.append((principal, machine_arn))
        if self.error is not None:
            raise self.error
        return (principal, machine_arn) in self.allowed


def run(check: Any, definition: dict[str, Any], items: int = 3) -> tuple[WorkflowEnvironment, str]:
    env = WorkflowEnvironment(account=ACCOUNT)
    env.stepper.map_run_check = check
    arn = env.start(env.register(definition, "Fan"), list(range(items)))
    env.run(arn)
    return env, arn


@pytest.mark.parametrize("kind", ["STANDARD", "EXPRESS"])
def test_a_role_that_may_not_start_the_machine_fails_the_map_and_starts_nothing(kind: str) -> None:
    grants = Grants()
    env, arn = run(grants, fan_out(kind=kind))
    result = env.result(arn)
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert result.cause == (
        f"User: {EXECUTION_ROLE} is not authorized to perform: states:StartExecution on "
        f"resource: {MACHINE} because no identity-based policy allows the "
        "states:StartExecution action"
    )
    assert grants.asked == [(EXECUTION_ROLE, MACHINE)]  # once, as the execution's role
    types = [e["type"] for e in env.history(arn)]
    assert "MapRunFailed" in types and "MapIterationStarted" not in types
    listed = env.api.call("ListExecutions", {"stateMachineArn": MACHINE})["executions"]
    assert [e["executionArn"] for e in listed] == [arn]  # no child was started
    assert env.api.call("ListMapRuns", {"executionArn": arn})["mapRuns"] == []  # never made


def test_an_allowed_role_is_asked_once_per_run_and_a_redrive_asks_again() -> None:
    grants = Grants()
    env, arn = run(grants, fan_out(), items=5)
    assert env.result(arn).status == "FAILED"
    grants.allowed.add((EXECUTION_ROLE, MACHINE))  # the policy is fixed: redrive the parent
    env.api.call("RedriveExecution", {"executionArn": arn})
    env.run(arn)
    assert env.result(arn).status == "SUCCEEDED"
    assert env.result(arn).result == [0, 1, 2, 3, 4]
    assert grants.asked == [(EXECUTION_ROLE, MACHINE)] * 2  # not once per child


def test_an_inline_map_run_is_not_checked() -> None:
    grants = Grants()
    env, arn = run(grants, fan_out("INLINE"), items=45)  # past child_limit: a map run
    assert env.result(arn).status == "SUCCEEDED"
    assert grants.asked == []


def test_a_check_that_cannot_be_made_never_starts_the_run() -> None:
    grants = Grants(error=PassRoleCheckError("IAM is down"))
    env = WorkflowEnvironment(account=ACCOUNT)
    env.stepper.map_run_check = MapRunStarts(grants)
    arn = env.start(env.register(fan_out(), "Fan"), [1, 2])
    with pytest.raises(DeliveryError, match="IAM is down"):
        env.run(arn)
    assert env.result(arn).status == "RUNNING"  # the start is delivered again later
    types = [e["type"] for e in env.history(arn)]
    assert "MapIterationStarted" not in types and "MapRunSucceeded" not in types


def test_iam_decides_through_the_deployed_check(iam: tuple[Any, Stubber]) -> None:
    client, stub = iam
    simulated(stub, EXECUTION_ROLE, MACHINE, "implicitDeny")
    env, arn = run(MapRunStarts(IamPassRoleChecker(client)), fan_out())
    assert (env.result(arn).status, env.result(arn).error) == ("FAILED", "States.Runtime")
    simulated(stub, EXECUTION_ROLE, MACHINE, "allowed")
    env, arn = run(MapRunStarts(IamPassRoleChecker(client)), fan_out())
    assert env.result(arn).status == "SUCCEEDED"
    stub.assert_no_pending_responses()


def test_the_deployed_stepper_checks_when_the_setting_is_iam(
    iam: tuple[Any, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    checked = {**DEPLOYED, "STEPFLOW_NESTED_START_CHECK": "iam"}
    on = build(Settings.from_environ(checked), clients={"iam": iam[0]})
    assert isinstance(on.stepper.map_run_check, MapRunStarts)
    assert on.stepper.map_run_check.checker is on.start_checker
    off = build(Settings.from_environ(DEPLOYED), clients={"iam": iam[0]})
    assert off.stepper.map_run_check is None
