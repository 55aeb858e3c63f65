"""Access control's pieces: the glob, the policy, principals, and the iam:PassRole checkers."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from stepflow.api.access import AccessPolicy, Caller, check_pass_role, machines_named
from stepflow.api.arns import Scope
from stepflow.api.errors import ApiError
from stepflow.api.globs import glob
from stepflow.api.pass_role import (
    IamPassRoleChecker,
    PassRoleCheckError,
    StaticPassRoles,
    checker_from_setting,
    policy_source,
)

ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/path/Workflow"
USER = f"arn:aws:iam::{ACCOUNT}:user/alice"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/Deployer/ci-42"


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("orders-*", "orders-eu", True),
        ("orders-*", "orders-", True),
        ("orders-*", "billing-orders-eu", False),
        ("*", "", True),
        ("a*b*c", "abc", True),
        ("a*b*c", "aXbYc", True),
        ("a*b*c", "acb", False),
        ("ab*ba", "aba", False),  # the prefix and suffix may not overlap
        ("exact", "exact", True),
        ("exact", "exactly", False),
        ("states:Describe*", "states:DescribeExecution", True),
    ],
)
def test_glob(pattern: str, text: str, expected: bool) -> None:
    assert glob(pattern, text) is expected


def test_glob_is_not_a_backtracking_regex() -> None:
    # The shape that freezes a backtracking matcher: many stars, a near miss at the end.
    assert glob("*a" * 12 + "*b", "a" * 5000) is False


def test_policy_from_json_and_decisions() -> None:
    policy = AccessPolicy.from_json(
        json.dumps(
            {
                "rules": [
                    {
                        "principals": [f"arn:aws:iam::{ACCOUNT}:user/alice"],
                        "actions": ["states:StartExecution", "states:Describe*"],
                        "stateMachines": ["orders-*"],
                    },
                    {
                        "principals": "*",
                        "actions": "states:DescribeStateMachine",
                        "stateMachines": "public",
                    },
                ]
            }
        )
    )
    assert policy is not None
    assert policy.allows(USER, "states:StartExecution", "orders-eu")
    assert policy.allows(USER, "states:DescribeExecution", "orders-eu")
    assert not policy.allows(USER, "states:StopExecution", "orders-eu")
    assert not policy.allows(USER, "states:StartExecution", "billing")
    assert policy.allows("arn:aws:iam::1:user/anyone", "states:DescribeStateMachine", "public")
    assert not policy.allows(None, "states:DescribeStateMachine", "public")  # unknown caller


@pytest.mark.parametrize(
    "text",
    [
        "{}",
        '"rules"',
        '[{"principals": ["*"], "actions": ["*"]}]',
        '[{"principals": [1], "actions": ["*"], "stateMachines": ["*"]}]',
        '[{"principals": ["*"], "actions": ["*"], "stateMachines": ["*"], "effect": "Deny"}]',
        "[1]",
        "not json",
    ],
)
def test_malformed_policies_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        AccessPolicy.from_json(text)


def test_empty_policy_setting_is_no_policy() -> None:
    assert AccessPolicy.from_json("  ") is None


def test_caller_from_api_gateway_identity() -> None:
    identity = {"userArn": SESSION, "accountId": ACCOUNT, "accessKey": "ASIAX", "caller": "AROA:ci"}
    assert Caller.from_identity(identity) == Caller(SESSION, ACCOUNT, "ASIAX")
    assert Caller.from_identity({"sourceIp": "1.2.3.4"}) is None
    assert Caller.from_identity({"userArn": None}) is None
    assert Caller.from_identity(None) is None


def test_machines_named_resolves_every_resource_to_its_state_machine() -> None:
    scope = Scope("eu-west-1", ACCOUNT)
    sm = scope.machine_arn("orders")
    assert machines_named(
        "DescribeExecution", {"executionArn": scope.execution_arn("orders", "e1")}, scope
    ) == [("orders", scope.execution_arn("orders", "e1"))]
    assert (
        machines_named("StartExecution", {"stateMachineArn": sm + ":live"}, scope)[0][0] == "orders"
    )
    assert (
        machines_named("DeleteStateMachineVersion", {"stateMachineVersionArn": sm + ":3"}, scope)[
            0
        ][0]
        == "orders"
    )
    assert machines_named("CreateStateMachine", {"name": "new"}, scope)[0][0] == "new"
    alias = {
        "name": "live",
        "routingConfiguration": [{"stateMachineVersionArn": sm + ":1", "weight": 100}],
    }
    assert machines_named("CreateStateMachineAlias", alias, scope)[0][0] == "orders"
    map_run = f"arn:aws:states:eu-west-1:{ACCOUNT}:mapRun:orders/Map:1234"
    assert machines_named("ListExecutions", {"mapRunArn": map_run}, scope)[0][0] == "orders"
    with pytest.raises(ApiError) as bad:
        machines_named("DescribeExecution", {"executionArn": "arn:aws:states:x"}, scope)
    assert bad.value.code == "InvalidArn"


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        (USER, ("user", USER)),
        (f"arn:aws:iam::{ACCOUNT}:role/Admin", ("role", f"arn:aws:iam::{ACCOUNT}:role/Admin")),
        (SESSION, ("role", f"{ACCOUNT}/Deployer")),
        (f"arn:aws:iam::{ACCOUNT}:root", ("root", f"arn:aws:iam::{ACCOUNT}:root")),
        (f"arn:aws:sts::{ACCOUNT}:federated-user/bob", ("other", None)),
        ("alice", ("other", None)),
    ],
)
def test_policy_source(principal: str, expected: tuple[str, str | None]) -> None:
    assert policy_source(principal) == expected


def _iam() -> Any:
    return boto3.client(
        "iam", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def _simulation(source: str, decision: str) -> tuple[dict[str, Any], dict[str, Any]]:
    expected = {
        "PolicySourceArn": source,
        "ActionNames": ["iam:PassRole"],
        "ResourceArns": [ROLE],
        "ContextEntries": [
            {
                "ContextKeyName": "iam:PassedToService",
                "ContextKeyValues": ["states.amazonaws.com"],
                "ContextKeyType": "string",
            }
        ],
    }
    answer = {
        "EvaluationResults": [
            {"EvalActionName": "iam:PassRole", "EvalResourceName": ROLE, "EvalDecision": decision}
        ],
        "IsTruncated": False,
    }
    return answer, expected


def test_iam_checker_call_shape_and_cache() -> None:
    client = _iam()
    now = [0.0]
    checker = IamPassRoleChecker(client, cache_seconds=60, clock=lambda: now[0])
    with Stubber(client) as stub:
        stub.add_response("simulate_principal_policy", *_simulation(USER, "allowed"))
        assert checker.may_pass(USER, ROLE) is True
        assert checker.may_pass(USER, ROLE) is True  # cached: the stub holds one answer
        stub.assert_no_pending_responses()
        now[0] = 61.0
        stub.add_response("simulate_principal_policy", *_simulation(USER, "implicitDeny"))
        assert checker.may_pass(USER, ROLE) is False  # expired: asked again
        stub.assert_no_pending_responses()


def test_iam_checker_simulates_an_assumed_role_session_as_its_role() -> None:
    client = _iam()
    checker = IamPassRoleChecker(client)
    deployer = f"arn:aws:iam::{ACCOUNT}:role/team/Deployer"
    with Stubber(client) as stub:
        stub.add_response(
            "get_role",
            {
                "Role": {
                    "Path": "/team/",
                    "RoleName": "Deployer",
                    "RoleId": "AROAEXAMPLEEXAMPLE1",
                    "Arn": deployer,
                    "CreateDate": "2026-01-01T00:00:00Z",
                }
            },
            {"RoleName": "Deployer"},
        )
        stub.add_response("simulate_principal_policy", *_simulation(deployer, "explicitDeny"))
        assert checker.may_pass(SESSION, ROLE) is False
        stub.assert_no_pending_responses()


def test_a_failed_check_is_an_error_and_is_not_cached() -> None:
    client = _iam()
    checker = IamPassRoleChecker(client)
    with Stubber(client) as stub:
        stub.add_client_error("simulate_principal_policy", "Throttling", "Rate exceeded", 400)
        with pytest.raises(ApiError) as failed:
            check_pass_role(checker, USER, ROLE)
        assert (failed.value.status, failed.value.code) == (503, "ServiceUnavailable")
        stub.add_response("simulate_principal_policy", *_simulation(USER, "allowed"))
        check_pass_role(checker, USER, ROLE)  # asked again: the failure was not remembered
        stub.assert_no_pending_responses()


def test_principals_iam_cannot_simulate_are_denied_and_root_may_pass() -> None:
    client = _iam()
    checker = IamPassRoleChecker(client)
    with Stubber(client) as stub:  # no response queued: IAM must not be called
        with pytest.raises(ApiError) as denied:
            check_pass_role(checker, f"arn:aws:sts::{ACCOUNT}:federated-user/bob", ROLE)
        assert denied.value.code == "AccessDeniedException"
        check_pass_role(checker, f"arn:aws:iam::{ACCOUNT}:root", ROLE)
        stub.assert_no_pending_responses()


def test_denial_message_is_aws_shape() -> None:
    with pytest.raises(ApiError) as denied:
        check_pass_role(StaticPassRoles({}), USER, ROLE)
    assert denied.value.status == 400
    assert denied.value.code == "AccessDeniedException"
    assert denied.value.message.startswith(
        f"User: {USER} is not authorized to perform: iam:PassRole on resource: {ROLE}"
    )
    with pytest.raises(ApiError) as unknown:
        check_pass_role(StaticPassRoles({"*": ["*"]}), None, ROLE)
    assert unknown.value.code == "AccessDeniedException"


def test_static_grants_and_the_setting() -> None:
    grants = StaticPassRoles(
        {f"arn:aws:iam::{ACCOUNT}:user/*": [f"arn:aws:iam::{ACCOUNT}:role/path/*"]}
    )
    assert grants.may_pass(USER, ROLE)
    assert not grants.may_pass(USER, f"arn:aws:iam::{ACCOUNT}:role/Admin")
    assert not grants.may_pass(SESSION, ROLE)
    assert checker_from_setting("off", _iam) is None
    assert checker_from_setting("", _iam) is None
    assert isinstance(checker_from_setting("iam", _iam), IamPassRoleChecker)
    assert isinstance(checker_from_setting('{"*": ["*"]}', _iam), StaticPassRoles)
    for bad in ("on", '{"*": "x"}', "[1]"):
        with pytest.raises(ValueError):
            checker_from_setting(bad, _iam)


def test_pass_role_check_error_denied_flag() -> None:
    assert PassRoleCheckError("x", denied=True).denied
    assert not PassRoleCheckError("x").denied


def test_settings_read_and_check_the_access_settings() -> None:
    from pydantic import ValidationError
    from stepflow.aws.settings import Settings

    rules = '[{"principals": ["*"], "actions": ["states:Describe*"], "stateMachines": ["*"]}]'
    settings = Settings.from_environ(
        {"TABLE_NAME": "t", "STEPFLOW_ACCESS_POLICY": rules, "STEPFLOW_PASS_ROLE_CHECK": "iam"}
    )
    assert (settings.access_policy, settings.pass_role_check) == (rules, "iam")
    assert Settings(table_name="t").pass_role_check == "off"
    for bad in ({"STEPFLOW_ACCESS_POLICY": "[1]"}, {"STEPFLOW_PASS_ROLE_CHECK": "yes"}):
        with pytest.raises(ValidationError):
            Settings.from_environ({"TABLE_NAME": "t", **bad})


def test_local_identity_from_the_sigv4_access_key() -> None:
    from stepflow.local.gateway import identity

    signed = {
        "Authorization": "AWS4-HMAC-SHA256 "
        "Credential=alice/20260101/us-east-1/states/aws4_request, "
        "SignedHeaders=host, Signature=00"
    }
    assert identity(signed, "000000000000") == {
        "accessKey": "alice",
        "userArn": "arn:aws:iam::000000000000:user/alice",
        "caller": "alice",
        "accountId": "000000000000",
    }
    mapped = identity(signed, "000000000000", {"alice": SESSION})
    assert mapped["userArn"] == SESSION
    assert identity({}, "000000000000") == {}
    assert identity({"authorization": "Basic abc"}, "000000000000") == {}
    # A hostile key (no ARN injection: only access-key characters are taken).
    assert identity({"authorization": "Credential=a:b/x"}, "000000000000") == {}


def test_a_principal_iam_does_not_know_is_denied_not_an_outage() -> None:
    client = _iam()
    checker = IamPassRoleChecker(client)
    foreign = "arn:aws:sts::999999999999:assumed-role/Stranger/s"
    with Stubber(client) as stub:
        stub.add_client_error("get_role", "NoSuchEntity", "no role Stranger", 404)
        with pytest.raises(ApiError) as denied:
            check_pass_role(checker, foreign, ROLE)
        assert (denied.value.status, denied.value.code) == (400, "AccessDeniedException")
        stub.assert_no_pending_responses()


def test_the_local_stack_refuses_bad_access_settings_before_starting() -> None:
    from stepflow.local import LocalStack

    stack = LocalStack(port=0, access_policy="[1]")
    with pytest.raises(ValueError):
        stack.start()
    assert stack.aws_endpoint == "" and stack.wiring is None  # nothing was started
    with pytest.raises(ValueError):
        LocalStack(port=0, check_roles="yes").start()
