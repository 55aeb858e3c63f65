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
