"""Access control on the deployed path: API Gateway proxy events with an IAM identity.

The API Lambda's ``handler`` gets the event API Gateway sends with IAM auth
(``requestContext.identity.userArn``); the service records the principal and
enforces the access policy and iam:PassRole (through IAM's
SimulatePrincipalPolicy, stubbed: moto does not implement it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from stepflow.api import StepFunctionsService, lambda_handler
from stepflow.api.access import AccessControl, AccessPolicy, Caller
from stepflow.api.pass_role import IamPassRoleChecker, PassRoleChecker, StaticPassRoles
from stepflow.runtime import InMemoryBus, InMemoryLog
from stepflow.runtime.registry import InMemoryRegistry

from tests.api.conftest import PASS, ROLE, SCOPE, invoke

ACCOUNT = SCOPE.account
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/Deployer/ci-42"
DEPLOYER = f"arn:aws:iam::{ACCOUNT}:role/Deployer"
READER = f"arn:aws:iam::{ACCOUNT}:user/reader"
CONTEXT = SimpleNamespace(
    function_name="api", memory_limit_in_mb=256, invoked_function_arn="arn", aws_request_id="r"
)
POLICY = AccessPolicy.from_json(
    json.dumps(
        [
            {"principals": [SESSION], "actions": ["states:*"], "stateMachines": ["*"]},
            {
                "principals": [READER],
                "actions": ["states:Describe*"],
                "stateMachines": ["orders-*"],
            },
        ]
    )
)


class Deployed:
    """The service behind the API Lambda, its ports, and the PassRole checker it asks."""

    def __init__(self, checker: PassRoleChecker | None, policy: AccessPolicy | None) -> None:
        self.log, self.registry = InMemoryLog(), InMemoryRegistry()
        self.bus = InMemoryBus(1_700_000_000.0)
        self.service = StepFunctionsService(
            log=self.log,
            bus=self.bus,
            registry=self.registry,
            invoker=invoke,
            scope=SCOPE,
            clock=lambda: self.bus.now,
            access=AccessControl(policy=policy, pass_role=checker),
        )

    def __call__(self, principal: str | None, operation: str, **params: Any) -> tuple[int, Any]:
        identity: dict[str, Any] = {"sourceIp": "10.0.0.1", "accessKey": "ASIAEXAMPLE"}
        if principal is not None:
            identity.update(userArn=principal, accountId=ACCOUNT, caller="AROA:ci-42")
        event = {
            "httpMethod": "POST",
            "path": "/",
            "headers": {"X-Amz-Target": f"AWSStepFunctions.{operation}"},
            "body": json.dumps(params),
            "isBase64Encoded": False,
            "requestContext": {"stage": "v1", "identity": identity},
        }
        lambda_handler.configure(self.service)
        try:
            response = lambda_handler.handler(event, CONTEXT)
        finally:
            lambda_handler.configure(None)
        return response["statusCode"], json.loads(response["body"])

    def writes(self) -> Any:
        """Everything the registry and the log hold (compared before and after a call)."""
        registry, log = self.registry, self.log
        return (
            repr(registry._docs),
            repr(registry._definitions),
            repr(log._heads),
            repr(log._events),
        )


@pytest.fixture
def stubbed_iam() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "iam", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stub:
        yield client, stub


def _get_role(stub: Stubber) -> None:
    role = {
        "Path": "/",
        "RoleName": "Deployer",
        "RoleId": "AROAEXAMPLEEXAMPLE1",
        "Arn": DEPLOYER,
        "CreateDate": "2026-01-01T00:00:00Z",
    }
    stub.add_response("get_role", {"Role": role}, {"RoleName": "Deployer"})


def _simulate(stub: Stubber, role: str, decision: str) -> None:
    result = {"EvalActionName": "iam:PassRole", "EvalResourceName": role, "EvalDecision": decision}
    stub.add_response(
        "simulate_principal_policy",
        {"EvaluationResults": [result]},
        {
            "PolicySourceArn": DEPLOYER,
            "ActionNames": ["iam:PassRole"],
            "ResourceArns": [role],
            "ContextEntries": [
                {
                    "ContextKeyName": "iam:PassedToService",
                    "ContextKeyValues": ["states.amazonaws.com"],
                    "ContextKeyType": "string",
                }
            ],
        },
    )


def test_pass_role_through_iam_on_the_lambda_path(stubbed_iam: tuple[Any, Stubber]) -> None:
    client, stub = stubbed_iam
    api = Deployed(IamPassRoleChecker(client), None)
    other = f"arn:aws:iam::{ACCOUNT}:role/Admin"
    _get_role(stub)
    _simulate(stub, other, "implicitDeny")
    before = api.writes()
    status, body = api(SESSION, "CreateStateMachine", name="m", definition=PASS, roleArn=other)
    assert (status, body["__type"]) == (400, "AccessDeniedException")
    assert body["message"].startswith(
        f"User: {SESSION} is not authorized to perform: iam:PassRole on resource: {other}"
    )
    assert api.writes() == before  # nothing written for the denied call
    _simulate(stub, ROLE, "allowed")
    status, created = api(SESSION, "CreateStateMachine", name="m", definition=PASS, roleArn=ROLE)
    assert status == 200
    stub.assert_no_pending_responses()  # GetRole once (cached), one simulation per role
    status, described = api(
        SESSION, "DescribeStateMachine", stateMachineArn=created["stateMachineArn"]
    )
    assert described["createdBy"] == SESSION
    # An update that passes no role asks IAM nothing (the stub has no answer queued).
    status, _ = api(
        SESSION, "UpdateStateMachine", stateMachineArn=created["stateMachineArn"], definition=PASS
    )
    assert status == 200


def test_a_failing_iam_never_allows(stubbed_iam: tuple[Any, Stubber]) -> None:
    client, stub = stubbed_iam
    api = Deployed(IamPassRoleChecker(client), None)
    _get_role(stub)
    stub.add_client_error("simulate_principal_policy", "ServiceFailure", "IAM is down", 500)
    before = api.writes()
    status, body = api(SESSION, "CreateStateMachine", name="m", definition=PASS, roleArn=ROLE)
    assert (status, body["__type"]) == (503, "ServiceUnavailable")
    assert api.writes() == before


def test_an_unauthenticated_request_cannot_pass_a_role() -> None:
    grants = StaticPassRoles({"*": ["*"]})
    api = Deployed(grants, None)
    status, body = api(None, "CreateStateMachine", name="m", definition=PASS, roleArn=ROLE)
    assert (status, body["__type"]) == (400, "AccessDeniedException")
    assert grants.calls == 0
    assert api.registry.heads()[0] == []


def test_pass_role_is_checked_once_per_create_and_update_with_a_role() -> None:
    grants = StaticPassRoles({SESSION: [ROLE]})
    api = Deployed(grants, None)
    status, created = api(SESSION, "CreateStateMachine", name="m", definition=PASS, roleArn=ROLE)
    assert (status, grants.calls) == (200, 1)
    arn = created["stateMachineArn"]
    assert api(SESSION, "UpdateStateMachine", stateMachineArn=arn, roleArn=ROLE)[0] == 200
    assert grants.calls == 2
    other = f"arn:aws:iam::{ACCOUNT}:role/Admin"
    status, body = api(SESSION, "UpdateStateMachine", stateMachineArn=arn, roleArn=other)
    assert (status, body["__type"], grants.calls) == (400, "AccessDeniedException", 3)
    assert api(SESSION, "DescribeStateMachine", stateMachineArn=arn)[1]["roleArn"] == ROLE
    state = json.dumps({"Type": "Pass", "End": True})
    assert api(SESSION, "TestState", definition=state, roleArn=ROLE)[0] == 200
    status, body = api(SESSION, "TestState", definition=state, roleArn=other)
    assert (status, body["__type"], grants.calls) == (400, "AccessDeniedException", 5)


def test_principals_are_recorded_on_machines_and_executions() -> None:
    api = Deployed(None, None)
    creator = f"arn:aws:iam::{ACCOUNT}:user/creator"
    _, created = api(creator, "CreateStateMachine", name="m", definition=PASS, roleArn=ROLE)
    arn = created["stateMachineArn"]
    api(SESSION, "UpdateStateMachine", stateMachineArn=arn, definition=PASS)
    _, machine = api(READER, "DescribeStateMachine", stateMachineArn=arn)
    assert (machine["createdBy"], machine["updatedBy"]) == (creator, SESSION)
    _, started = api(SESSION, "StartExecution", stateMachineArn=arn, input='{"secret": 1}')
    _, execution = api(READER, "DescribeExecution", executionArn=started["executionArn"])
    assert execution["startedBy"] == SESSION
    assert api.log.get(started["executionArn"]).attributes == {"startedBy": SESSION}
    # The principal is not execution data: the history does not carry it.
    _, history = api(READER, "GetExecutionHistory", executionArn=started["executionArn"])
    assert SESSION not in json.dumps(history)


def test_who_stopped_and_who_redrove_an_execution_is_recorded_once_it_changes() -> None:
    api = Deployed(None, None)
    wait = json.dumps(
        {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 600, "End": True}}}
    )
    _, created = api(SESSION, "CreateStateMachine", name="m", definition=wait, roleArn=ROLE)
    _, started = api(SESSION, "StartExecution", stateMachineArn=created["stateMachineArn"])
    arn = started["executionArn"]
    # WHEN the reader stops it, then the session redrives it
    stopper, driver = READER, f"arn:aws:iam::{ACCOUNT}:user/driver"
    assert api(stopper, "StopExecution", executionArn=arn)[0] == 200
    seq = api.log.get(arn).seq
    # a second stop of a finished execution changes nothing, so records no one
    assert api(driver, "StopExecution", executionArn=arn)[0] == 200
    assert api.log.get(arn).seq == seq
    assert api(driver, "RedriveExecution", executionArn=arn)[0] == 200
    # THEN each principal is in the head and in DescribeExecution, never in the history
    _, described = api(READER, "DescribeExecution", executionArn=arn)
    assert (described["startedBy"], described["stoppedBy"], described["redrivenBy"]) == (
        SESSION,
        stopper,
        driver,
    )
    assert api.log.get(arn).attributes == {
        "startedBy": SESSION,
        "stoppedBy": stopper,
        "redrivenBy": driver,
    }
    _, history = api(READER, "GetExecutionHistory", executionArn=arn)
    assert stopper not in json.dumps(history) and driver not in json.dumps(history)


def test_in_process_calls_record_no_principal() -> None:
    api = Deployed(None, None)
    created = api.service.call(
        "CreateStateMachine", {"name": "m", "definition": PASS, "roleArn": ROLE}
    )
    head = api.registry.get("m", "HEAD")
    assert head is not None and "createdBy" not in head
    caller = Caller(READER)
    api.service.call(
        "StartExecution",
        {"stateMachineArn": created["stateMachineArn"], "name": "e"},
        caller=caller,
    )
    record = api.log.get(SCOPE.execution_arn("m", "e"))
    assert record is not None and record.attributes == {"startedBy": READER}


def test_policy_on_the_lambda_path_lists_only_visible_machines() -> None:
    api = Deployed(None, POLICY)
    for name in ("orders-eu", "billing", "orders-us"):
        assert (
            api(SESSION, "CreateStateMachine", name=name, definition=PASS, roleArn=ROLE)[0] == 200
        )
    _, listed = api(READER, "ListStateMachines")
    assert [m["name"] for m in listed["stateMachines"]] == ["orders-eu", "orders-us"]
    _, everything = api(SESSION, "ListStateMachines")
    assert len(everything["stateMachines"]) == 3
    status, body = api(READER, "DescribeStateMachine", stateMachineArn=SCOPE.machine_arn("billing"))
    assert (status, body["__type"]) == (400, "AccessDeniedException")
    assert "states:DescribeStateMachine" in body["message"]
    status, body = api(None, "DescribeStateMachine", stateMachineArn=SCOPE.machine_arn("orders-eu"))
    assert (status, body["__type"]) == (400, "AccessDeniedException")


def test_a_caller_the_policy_denies_costs_no_iam_call() -> None:
    grants = StaticPassRoles({"*": ["*"]})
    api = Deployed(grants, POLICY)
    status, body = api(READER, "CreateStateMachine", name="orders-x", definition=PASS, roleArn=ROLE)
    assert (status, body["__type"], grants.calls) == (400, "AccessDeniedException", 0)
    assert "states:CreateStateMachine" in body["message"]
    assert (
        api(SESSION, "CreateStateMachine", name="orders-x", definition=PASS, roleArn=ROLE)[0] == 200
    )
    assert grants.calls == 1


def _map_run(machine: str) -> str:
    return f"arn:aws:states:{SCOPE.region}:{ACCOUNT}:mapRun:{machine}/Each:0b6b2b5c"


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("DescribeMapRun", {}),
        ("UpdateMapRun", {"maxConcurrency": 5}),
    ],
)
def test_the_map_run_operations_are_checked_as_states_actions_on_the_parents_machine(
    operation: str, params: dict[str, Any]
) -> None:
    """``states:DescribeMapRun`` / ``states:UpdateMapRun``, as IAM names them, on the run's
    state machine: allowed runs get to the operation, the others are denied before it."""
    policy = AccessPolicy.from_json(
        json.dumps(
            [{"principals": [READER], "actions": [f"states:{operation}"], "stateMachines": ["o*"]}]
        )
    )
    api = Deployed(None, policy)
    before = api.writes()
    for principal, machine in ((READER, "billing"), (SESSION, "orders"), (None, "orders")):
        status, body = api(principal, operation, mapRunArn=_map_run(machine), **params)
        assert (status, body["__type"]) == (400, "AccessDeniedException"), (principal, machine)
        assert f"states:{operation} on resource: {_map_run(machine)}" in body["message"]
    # allowed: the operation itself answers (there is no such run)
    status, body = api(READER, operation, mapRunArn=_map_run("orders"), **params)
    assert (status, body["__type"]) == (400, "ResourceNotFound")
    # a run ARN of another account or with extra parts is refused, never read as allowed
    for hostile in (
        _map_run("orders").replace(ACCOUNT, "999988887777"),
        _map_run("orders") + ":extra",
    ):
        status, body = api(READER, operation, mapRunArn=hostile, **params)
        assert (status, body["__type"]) == (400, "InvalidArn"), hostile
    assert api.writes() == before


def test_list_map_runs_is_checked_on_the_executions_machine() -> None:
    policy = AccessPolicy.from_json(
        json.dumps(
            [
                {"principals": [SESSION], "actions": ["states:*"], "stateMachines": ["*"]},
                {
                    "principals": [READER],
                    "actions": ["states:Describe*", "states:ListMapRuns"],
                    "stateMachines": ["orders"],
                },
            ]
        )
    )
    api = Deployed(None, policy)
    for name in ("orders", "billing"):
        created = api(SESSION, "CreateStateMachine", name=name, definition=PASS, roleArn=ROLE)
        assert created[0] == 200
        machine = SCOPE.machine_arn(name)
        assert api(SESSION, "StartExecution", stateMachineArn=machine, name="e")[0] == 200
    status, body = api(READER, "ListMapRuns", executionArn=SCOPE.execution_arn("orders", "e"))
    assert (status, body) == (200, {"mapRuns": []})
    status, body = api(READER, "ListMapRuns", executionArn=SCOPE.execution_arn("billing", "e"))
    assert (status, body["__type"]) == (400, "AccessDeniedException")
    assert "states:ListMapRuns" in body["message"]
    status, body = api(None, "ListMapRuns", executionArn=SCOPE.execution_arn("orders", "e"))
    assert (status, body["__type"]) == (400, "AccessDeniedException")
