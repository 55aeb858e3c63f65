"""The live WebSocket API in the CDK stack (``-c stepflow:live=true``): routes, IAM, grants.

Synthesized once, with cdk-nag: no finding. Each grant is compared statement by
statement: ManageConnections on this API's stage only, table writes only under
``LIVE*`` partition keys; the hooks dispatcher runs the ``live`` hook.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
cdk = pytest.importorskip("aws_cdk", reason="aws-cdk-lib is not installed (pip install -e .[cdk])")
from aws_cdk.assertions import Template  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "cdk"))
from stepflow_cdk.app import build_app  # noqa: E402
from stepflow_cdk.hooks_config import HooksConfig  # noqa: E402
from stepflow_cdk.stack import StepFlowStack  # noqa: E402

Synth = tuple[dict[str, Any], list[str]]
RULES = '[{"principals": ["*"], "actions": ["states:*"], "stateMachines": ["a"]}]'
POLICY = {"stepflow:accessPolicy": RULES}


@pytest.fixture(scope="module")
def live() -> Synth:
    app = build_app({"stepflow:bundle": "false", "stepflow:live": "true", **POLICY})
    assembly = app.synth()
    stack = app.node.find_child("StepFlow")
    assert isinstance(stack, cdk.Stack)
    template = Template.from_stack(stack)
    findings = [
        f"{m.level} {m.id} {m.entry.data}"
        for m in assembly.get_stack_by_name("StepFlow").messages
        if "AwsSolutions" in str(m.entry.data)
    ]
    return template.to_json()["Resources"], findings


def _of(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r["Properties"] for k, r in resources.items() if r["Type"] == kind}


def _function(resources: dict[str, Any], service: str) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (key, p)
        for key, p in _of(resources, "AWS::Lambda::Function").items()
        if p.get("Environment", {}).get("Variables", {}).get("POWERTOOLS_SERVICE_NAME") == service
    ]
    return found


def _statements(resources: dict[str, Any], service: str) -> list[dict[str, Any]]:
    _, function = _function(resources, service)
    role = function["Role"]["Fn::GetAtt"][0]
    return [
        s
        for p in _of(resources, "AWS::IAM::Policy").values()
        if {"Ref": role} in p["Roles"]
        for s in p["PolicyDocument"]["Statement"]
    ]


def test_cdk_nag_finds_nothing(live: Synth) -> None:
    assert live[1] == []


def test_connect_is_iam_authorized_and_the_routes_reach_the_live_function(live: Synth) -> None:
    resources = live[0]
    (api,) = _of(resources, "AWS::ApiGatewayV2::Api").values()
    assert api["ProtocolType"] == "WEBSOCKET"
    assert api["RouteSelectionExpression"] == "$request.body.action"
    routes = {p["RouteKey"]: p for p in _of(resources, "AWS::ApiGatewayV2::Route").values()}
    assert sorted(routes) == ["$connect", "$disconnect", "subscribe", "unsubscribe"]
    assert routes["$connect"]["AuthorizationType"] == "AWS_IAM"
    live_key, _ = _function(resources, "stepflow-live")
    (integration,) = _of(resources, "AWS::ApiGatewayV2::Integration").values()
    assert live_key in str(integration["IntegrationUri"])
    (stage,) = _of(resources, "AWS::ApiGatewayV2::Stage").values()
    assert stage["StageName"] == "v1" and stage["AutoDeploy"] is True
    assert "DestinationArn" in stage["AccessLogSettings"]
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] == 50


def _manage(api_id: str) -> dict[str, Any]:
    return {
        "Action": "execute-api:ManageConnections",
        "Effect": "Allow",
        "Resource": {
            "Fn::Join": [
                "",
                [
                    "arn:",
                    {"Ref": "AWS::Partition"},
                    ":execute-api:",
                    {"Ref": "AWS::Region"},
                    ":",
                    {"Ref": "AWS::AccountId"},
                    ":",
                    {"Ref": api_id},
                    "/v1/POST/@connections/*",
                ],
            ]
        },
    }


@pytest.mark.parametrize("service", ["stepflow-live", "stepflow-hooks"])
def test_both_functions_manage_this_apis_connections_and_write_only_live_keys(
    live: Synth, service: str
) -> None:
    resources = live[0]
    (api_id,) = _of(resources, "AWS::ApiGatewayV2::Api")
    (table,) = [k for k in _of(resources, "AWS::DynamoDB::Table") if k.startswith("StorageLog")]
    statements = _statements(resources, service)
    assert _manage(api_id) in statements
    managing = [s for s in statements if "execute-api" in str(s["Action"])]
    assert managing == [_manage(api_id)]
    writes = [s for s in statements if "dynamodb:PutItem" in s["Action"]]
    assert writes == [
        {
            "Action": [
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:ConditionCheckItem",
            ],
            "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["LIVE*"]}},
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [table, "Arn"]},
        }
    ]
    unconditioned = {
        action
        for s in statements
        if "Condition" not in s
        for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        if action.startswith("dynamodb:")
    }
    # The dispatcher's own grants: its stream, and the heads (GetItem).
    own = {"GetItem", "ListStreams", "DescribeStream", "GetRecords", "GetShardIterator"}
    assert unconditioned <= {f"dynamodb:{a}" for a in own}
    if service == "stepflow-live":
        assert not unconditioned  # its reads too are under LeadingKeys
    reads = [s for s in statements if s["Action"] == ["dynamodb:GetItem", "dynamodb:Query"]]
    assert reads == [
        {
            "Action": ["dynamodb:GetItem", "dynamodb:Query"],
            "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["EX#*", "LIVE*"]}},
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [table, "Arn"]},
        }
    ]


def test_the_hooks_dispatcher_runs_the_live_hook_on_this_api(live: Synth) -> None:
    resources = live[0]
    (api_id,) = _of(resources, "AWS::ApiGatewayV2::Api")
    _, hooks = _function(resources, "stepflow-hooks")
    variables = hooks["Environment"]["Variables"]
    assert variables["STEPFLOW_HOOKS"] == "metrics,live"
    assert {"Ref": api_id} in variables["STEPFLOW_LIVE_ENDPOINT"]["Fn::Join"][1]
    _, function = _function(resources, "stepflow-live")
    assert "STEPFLOW_LIVE_ENDPOINT" not in function["Environment"]["Variables"]
    # Subscribe checks the API's access policy: the live function has the API's.
    _, api = _function(resources, "stepflow-api")
    policy = api["Environment"]["Variables"]["STEPFLOW_ACCESS_POLICY"]
    assert function["Environment"]["Variables"]["STEPFLOW_ACCESS_POLICY"] == policy


def test_live_without_the_hooks_dispatcher_is_refused() -> None:
    with pytest.raises(ValueError, match="hooks dispatcher"):
        StepFlowStack(cdk.App(), "NoHooks", bundle=False, hooks=HooksConfig(hooks=()), live=True)
