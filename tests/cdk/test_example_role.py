"""examples/roles synthesizes offline, as ``cdk synth`` runs it: a /stepflow/ role trusting
StepFlow's stepper and runner, allowed to invoke exactly the order example's functions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aws_cdk", reason="aws-cdk-lib is not installed (pip install -e .[cdk])")

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "examples" / "roles"
STEPPER = "arn:aws:iam::123456789012:role/StepFlow-ComputeStepperServiceRole-ABC"
RUNNER = "arn:aws:iam::123456789012:role/StepFlow-ComputeRunnerServiceRole-DEF"


def synth(tmp_path: Path, context: dict[str, str]) -> dict[str, Any]:
    """Run the app the way the CDK CLI does (CDK_OUTDIR, CDK_CONTEXT_JSON) and read its template."""
    env = {
        **os.environ,
        "CDK_OUTDIR": str(tmp_path),
        "CDK_CONTEXT_JSON": json.dumps(context),
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    }
    subprocess.run(
        [sys.executable, "app.py"], cwd=APP, env=env, check=True, capture_output=True, timeout=300
    )
    template: dict[str, Any] = json.loads(
        (tmp_path / "StepFlowOrderRole.template.json").read_text()
    )
    return template


def _one(template: dict[str, Any], kind: str) -> dict[str, Any]:
    (found,) = [r["Properties"] for r in template["Resources"].values() if r["Type"] == kind]
    return found


def test_the_sample_role_trusts_stepflow_and_invokes_the_order_functions(tmp_path: Path) -> None:
    template = synth(tmp_path, {"stepperRole": STEPPER, "runnerRole": RUNNER})
    role = _one(template, "AWS::IAM::Role")
    assert role["Path"] == "/stepflow/"
    trust = role["AssumeRolePolicyDocument"]["Statement"]
    assert {(s["Action"], s["Effect"]) for s in trust} == {("sts:AssumeRole", "Allow")}
    principals = []
    for s in trust:
        aws = s["Principal"]["AWS"]
        principals += aws if isinstance(aws, list) else [aws]
    assert sorted(principals) == sorted([STEPPER, RUNNER])
    (statement,) = _one(template, "AWS::IAM::Policy")["PolicyDocument"]["Statement"]
    assert statement["Action"] == "lambda:InvokeFunction"
    names = {json.dumps(r).split(":function:")[1].split('"')[0] for r in statement["Resource"]}
    order = json.loads((ROOT / "examples" / "order.asl.json").read_text())
    expected = {
        s.split(":")[6] for s in json.dumps(order).split('"') if s.startswith("arn:aws:lambda:")
    }
    assert {n.removesuffix(":*") for n in names} == expected
    assert len(statement["Resource"]) == 2 * len(expected)  # each function, and its versions


def test_without_context_it_imports_the_stepflow_stacks_role_exports(tmp_path: Path) -> None:
    template = synth(tmp_path, {})
    trust = _one(template, "AWS::IAM::Role")["AssumeRolePolicyDocument"]["Statement"]
    principals = json.dumps(trust)
    assert "StepFlow-StepperRoleArn" in principals and "StepFlow-RunnerRoleArn" in principals


def _statements(**calls: dict[str, Any]) -> list[dict[str, Any]]:
    """The role policy of a WorkflowRole after ``calls`` (method name: keyword arguments)."""
    import aws_cdk as cdk

    sys.path.insert(0, str(APP))
    try:
        from workflow_role import WorkflowRole
    finally:
        sys.path.remove(str(APP))
    app = cdk.App()
    stack = cdk.Stack(app, "R", env=cdk.Environment(account="123456789012", region="eu-west-1"))
    role = WorkflowRole(stack, "W", trusted_role_arns=[STEPPER, RUNNER], functions=["f"])
    for method, kwargs in calls.items():
        getattr(role, method)(**kwargs)
    template = cdk.assertions.Template.from_stack(stack).to_json()
    (policy,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Policy"]
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return statements[1:]  # after lambda:InvokeFunction


def _text(resource: Any) -> str:
    """A resource ARN, its partition token read as ``aws``."""
    if isinstance(resource, dict) and "Fn::Join" in resource:
        parts = resource["Fn::Join"][1]
        resource = "".join("aws" if p == {"Ref": "AWS::Partition"} else str(p) for p in parts)
    return json.dumps(resource)


def _flat(statements: list[dict[str, Any]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for statement in statements:
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        resources = statement["Resource"]
        resources = resources if isinstance(resources, list) else [resources]
        for action in actions:
            found.setdefault(action, []).extend(_text(r) for r in resources)
    return found


def test_nested_executions_need_only_start_execution_on_stepflow() -> None:
    arn = "arn:aws:states:eu-west-1:123456789012:stateMachine:Child"
    only = _flat(_statements(allow_nested_executions={"state_machines": ["Child"]}))
    assert only == {"states:StartExecution": [json.dumps(arn), json.dumps(arn + ":*")]}
    portable = _flat(
        _statements(allow_nested_executions={"state_machines": ["Child"], "aws_compatible": True})
    )
    assert set(portable) == {
        "states:StartExecution",
        "states:DescribeExecution",
        "states:StopExecution",
        "events:PutTargets",
        "events:PutRule",
        "events:DescribeRule",
    }
    assert portable["events:PutRule"] == [
        json.dumps(
            "arn:aws:events:eu-west-1:123456789012:rule/"
            "StepFunctionsGetEventsForStepFunctionsExecutionRule"
        )
    ]
    assert portable["states:StopExecution"] == [
        json.dumps("arn:aws:states:eu-west-1:123456789012:execution:Child:*")
    ]


def test_a_distributed_map_reads_and_writes_only_its_objects() -> None:
    kwargs: dict[str, Any] = {
        "state_machine": "Batch",
        "read": [("in-bucket", "rows/*.csv")],
        "write": [("out-bucket", "results/")],
    }
    only = _flat(_statements(allow_distributed_map=kwargs))
    assert only == {
        "s3:GetObject": [json.dumps("arn:aws:s3:::in-bucket/rows/*.csv")],
        "s3:ListBucket": [json.dumps("arn:aws:s3:::in-bucket")],
        "s3:PutObject": [json.dumps("arn:aws:s3:::out-bucket/results/*")],
        "s3:AbortMultipartUpload": [json.dumps("arn:aws:s3:::out-bucket/results/*")],
    }
    portable = _flat(_statements(allow_distributed_map={**kwargs, "aws_compatible": True}))
    assert portable["states:StartExecution"] == [
        json.dumps("arn:aws:states:eu-west-1:123456789012:stateMachine:Batch")
    ]
    assert portable["states:DescribeExecution"] == [
        json.dumps("arn:aws:states:eu-west-1:123456789012:execution:Batch/*")
    ]
