"""StepFlowWorker: an activity's handler on a Fargate service, with no Docker at synth.

The stack is synthesized once (a module fixture), with cdk-nag; the hostile props fail
while the app is built, before anything is synthesized.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
cdk = pytest.importorskip("aws_cdk", reason="aws-cdk-lib is not installed (pip install -e .[cdk])")
from aws_cdk import aws_dynamodb as dynamodb  # noqa: E402
from aws_cdk import aws_iam as iam  # noqa: E402
from aws_cdk import aws_logs as logs  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "cdk"))
from stepflow_cdk.app import build_app  # noqa: E402
from stepflow_cdk.stack import StepFlowStack  # noqa: E402
from stepflow_cdk.workers import StepFlowWorker, WorkerCodeError  # noqa: E402

CODE = ROOT / "examples" / "worker"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:approvals"

Synth = tuple[dict[str, Any], Any, Path]


@pytest.fixture(scope="module")
def worker() -> Synth:
    app = cdk.App(context={"stepflow:bundle": "false"})
    stack = StepFlowStack(app, "StepFlow", bundle=False)
    orders = dynamodb.Table.from_table_name(stack, "Orders", "orders")
    StepFlowWorker(
        stack,
        "Approvals",
        stepflow=stack,
        code=CODE,
        handler="approvals:approve",
        activity="approve",
        grants=[
            iam.PolicyStatement(actions=["sns:Publish"], resources=[TOPIC]),
            lambda grantee: orders.grant(grantee, "dynamodb:GetItem"),
        ],
        environment={"APPROVAL_CHANNEL": "orders"},
        concurrency=4,
        grace_seconds=45,
        desired_count=2,
        cpu=1024,
        memory_mib=2048,
        log_retention=logs.RetentionDays.TWO_WEEKS,
    )
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    assembly = app.synth()
    template = Template.from_stack(stack).to_json()
    return template, assembly.get_stack_by_name("StepFlow"), Path(assembly.directory)


@pytest.fixture(scope="module")
def bare() -> StepFlowStack:
    """A stack for props refused before the construct adds anything (never synthesized)."""
    return StepFlowStack(cdk.App(context={"stepflow:bundle": "false"}), "StepFlow", bundle=False)


def _of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def _task(template: dict[str, Any]) -> dict[str, Any]:
    (task,) = [r["Properties"] for r in _of(template, "AWS::ECS::TaskDefinition").values()]
    return task


def _script(container: dict[str, Any]) -> str:
    """The container's ``sh -c`` script, references shown as ``<Logical.Id>``."""
    (command,) = container["Command"]
    if isinstance(command, str):
        return command
    separator, parts = command["Fn::Join"]
    return str(separator).join(
        p if isinstance(p, str) else f"<{p.get('Ref') or '.'.join(p['Fn::GetAtt'])}>" for p in parts
    )


def _statements(template: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    return [
        s
        for p in _of(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_the_service_runs_the_activity_handler_against_the_stacks_api(worker: Synth) -> None:
    template, _, directory = worker
    task = _task(template)
    containers = {c["Name"]: c for c in task["ContainerDefinitions"]}
    fetch, run = containers["Fetch"], containers["Worker"]
    (rest_api,) = _of(template, "AWS::ApiGateway::RestApi")
    (stage,) = _of(template, "AWS::ApiGateway::Stage")
    script = _script(run)
    assert run["EntryPoint"] == ["sh", "-c"]
    assert script.startswith("set -e; mkdir -p /app/tmp /app/code; ")
    assert "python -m zipfile -e /app/bundle.zip /app/code; " in script
    url = f"https://<{rest_api}>.execute-api.<AWS::Region>.<AWS::URLSuffix>/<{stage}>/"
    assert script.endswith(
        "exec python -m stepflow worker --activity approve approvals:approve "
        f"--api '{url}' --concurrency 4 --grace 45 --health-port 8080"
    ), script
    env = {e["Name"]: e["Value"] for e in run["Environment"]}
    # --api and STEPFLOW_ENDPOINT (--endpoint-url) together are refused by the worker
    assert "STEPFLOW_ENDPOINT" not in env and "STEPFLOW_CELLS" not in env
    assert env["PYTHONPATH"] == "/app/code" and env["APPROVAL_CHANNEL"] == "orders"
    assert run["StopTimeout"] == 45 + 30  # the grace, then time to release what is left
    assert run["ReadonlyRootFilesystem"] is True
    assert "http://127.0.0.1:8080/health" in json.dumps(run["HealthCheck"]["Command"])
    assert run["DependsOn"] == [{"Condition": "SUCCESS", "ContainerName": "Fetch"}]
    assert fetch["Command"][:2] == ["s3", "cp"] and fetch["Essential"] is False
    for container in (fetch, run):
        assert container["Image"].startswith("public.ecr.aws/") and ":" in container["Image"]
        assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    assert (task["Cpu"], task["Memory"]) == ("1024", "2048")
    (service,) = [r["Properties"] for r in _of(template, "AWS::ECS::Service").values()]
    assert service["DesiredCount"] == 2 and service["LaunchType"] == "FARGATE"
    assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"]["Rollback"] is True
    for container in (fetch, run):
        group = container["LogConfiguration"]["Options"]["awslogs-group"]["Ref"]
        assert template["Resources"][group]["Properties"]["RetentionInDays"] == 14
    (group,) = [r["Properties"] for r in _of(template, "AWS::EC2::SecurityGroup").values()]
    assert "SecurityGroupIngress" not in group
    # The bundle: stepflow and the directory's contents side by side, nothing to build.
    (bundle,) = [p for p in directory.glob("asset.*") if (p / "approvals.py").is_file()]
    assert (bundle / "stepflow" / "worker" / "runner.py").is_file()
    assert bundle.name.removeprefix("asset.") in json.dumps(fetch["Command"])
    manifest = json.loads((directory / "StepFlow.assets.json").read_text())
    assert not manifest.get("dockerImages")


def test_the_task_role_holds_the_api_method_its_bundle_and_the_grants_only(
    worker: Synth,
) -> None:
    template, _, _ = worker
    task = _task(template)
    statements = _statements(template, task["TaskRoleArn"]["Fn::GetAtt"][0])
    assert len(statements) == 4, statements
    bundle, invoke, publish, read = statements
    (rest_api,) = _of(template, "AWS::ApiGateway::RestApi")
    (stage,) = _of(template, "AWS::ApiGateway::Stage")
    assert invoke["Action"] == "execute-api:Invoke" and invoke["Effect"] == "Allow"
    parts = invoke["Resource"]["Fn::Join"][1]
    assert {"Ref": rest_api} in parts and {"Ref": stage} in parts
    assert parts[-1] == "/POST/"  # the one method every operation is; nothing else
    assert bundle["Action"] == "s3:GetObject"
    rendered = json.dumps(bundle["Resource"])
    assert ".zip" in rendered and "cdk-" in rendered and "/*" not in rendered
    assert publish == {"Action": "sns:Publish", "Effect": "Allow", "Resource": TOPIC}
    assert read["Action"] == "dynamodb:GetItem"
    assert json.dumps(read["Resource"]).endswith(':table/orders"]]}]')
    for statement in statements:
        assert statement["Resource"] != "*" and "Condition" not in statement, statement


def test_the_worker_is_cdk_nag_clean(worker: Synth) -> None:
    _, artifact, _ = worker
    found = [
        f"{m.level} {m.id} {m.entry.data}"
        for m in artifact.messages
        if "AwsSolutions" in str(m.entry.data)
    ]
    assert found == []


def test_cfn_lint_finds_no_errors(worker: Synth) -> None:
    from cfnlint.api import lint_all

    template = json.dumps(worker[0])
    assert [str(m) for m in lint_all(template) if m.rule.id.startswith("E")] == []


# Hostile props: each fails while the app is built, saying why.


def _build(stack: StepFlowStack, **props: Any) -> StepFlowWorker:
    given: dict[str, Any] = {
        "code": CODE,
        "handler": "approvals:approve",
        "activity": "approve",
        **props,
    }
    return StepFlowWorker(stack, f"W{len(stack.node.children)}", stepflow=stack, **given)


@pytest.mark.parametrize(
    ("props", "why"),
    [
        ({"concurrency": 0}, "concurrency must be 1-1000, not 0"),
        ({"concurrency": True}, "concurrency must be"),
        ({"concurrency": 10**6}, "concurrency must be"),
        ({"handler": "approvals.approve"}, "is not module:function"),
        ({"handler": "approvals:approve:x"}, "is not module:function"),
        ({"handler": "approvals:"}, "is not module:function"),
        ({"handler": "approvals; rm -rf /:approve"}, "is not module:function"),
        ({"handler": "missing:approve"}, "module 'missing' is not in"),
        ({"handler": "approvals:nothing"}, "has no 'nothing'"),
        ({"handler": "approvals:AUTO_APPROVE_LIMIT"}, "is not callable"),
        ({"code": CODE / "nowhere"}, "does not exist"),
        ({"code": CODE / "approvals.py"}, "is not a directory"),
        ({"activity": "two words"}, "not a valid activity name"),
        ({"activity": "x" * 81}, "not a valid activity name"),
        ({"activity": "a';reboot;'"}, "not a valid activity name"),
        ({"activity": "arn:aws:states:us-east-1:1:stateMachine:m"}, "not an activity ARN"),
        ({"grace_seconds": 0}, "grace_seconds must be 1-90"),
        ({"grace_seconds": 91}, "grace_seconds must be 1-90"),
        ({"desired_count": -1}, "desired_count must be 0 or more"),
        ({"cpu": 300}, "cpu must be one of"),
        ({"cpu": 256, "memory_mib": 4096}, "does not fit cpu 256"),
        ({"environment": {"STEPFLOW_ENDPOINT": "x"}}, "may not set STEPFLOW_ENDPOINT"),
        ({"environment": {"DB_PASSWORD": "hunter2"}}, "DB_PASSWORD looks like a secret"),
        ({"environment": {"LIMIT": 5}}, "must map names to strings"),
        ({"requirements": CODE / "missing.txt"}, "requirements file"),
    ],
)
def test_hostile_props_are_refused_before_anything_is_added(
    bare: StepFlowStack, props: dict[str, Any], why: str
) -> None:
    before = len(bare.node.children)
    with pytest.raises(WorkerCodeError, match=re.escape(why)):
        _build(bare, **props)
    assert len(bare.node.children) == before


@pytest.mark.parametrize(
    ("files", "handler", "why"),
    [
        ({"json.py": "", "jobs.py": "def run(x): return x\n"}, "jobs:run", "json would shadow"),
        ({"pydantic/__init__.py": "", "jobs.py": "def run(x): return x\n"}, "jobs:run", "shadow"),
        ({"stepflow/__init__.py": ""}, "stepflow:run", "stepflow would shadow"),
        ({"jobs.py": "def run(a, b, c): return a\n"}, "jobs:run", "takes (a, b, c)"),
        ({"jobs.py": "async def run(x): return x\n"}, "jobs:run", "is async"),
        ({"jobs.py": "raise RuntimeError('no config')\n"}, "jobs:run", "RuntimeError: no config"),
    ],
)
def test_code_that_cannot_run_as_a_worker_is_refused(
    bare: StepFlowStack, tmp_path: Path, files: dict[str, str], handler: str, why: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    with pytest.raises(WorkerCodeError, match=re.escape(why)):
        _build(bare, code=tmp_path, handler=handler)
    assert "jobs" not in sys.modules  # the synth's import is forgotten


def test_the_app_flag_adds_the_worker() -> None:
    context = {"stepflow:bundle": "false", "stepflow:nag": "false", "stepflow:worker": str(CODE)}
    with pytest.raises(ValueError, match="stepflow:workerActivity"):
        build_app(context)
    app = build_app(
        {
            **context,
            "stepflow:workerActivity": "approve",
            "stepflow:workerHandler": "approvals:approve",
        }
    )
    worker = app.node.find_child("StepFlow").node.find_child("Worker")
    assert isinstance(worker, StepFlowWorker) and worker.code.spec == "approvals:approve"


def test_the_synthesized_service_serves_the_activity_against_stepflow_local(
    worker: Synth, tmp_path: Path
) -> None:
    """The path that ships, short of AWS: the task definition's script, run as ECS would
    (the bundle unpacked from its zip, ``--api`` pointed at ``stepflow local``), serves
    the activity; each task is handed out once (one ActivityStarted per execution), an
    order over the limit fails with the handler's error, and SIGTERM stops it cleanly."""
    from stepflow.local import LocalStack

    template, _, directory = worker
    run = {c["Name"]: c for c in _task(template)["ContainerDefinitions"]}["Worker"]
    (bundle,) = [p for p in directory.glob("asset.*") if (p / "approvals.py").is_file()]
    app = tmp_path / "app"
    app.mkdir()
    with zipfile.ZipFile(app / "bundle.zip", "w") as archive:
        for file in bundle.rglob("*"):
            archive.write(file, file.relative_to(bundle))
    shim = tmp_path / "bin" / "python"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    shim.chmod(0o755)
    with LocalStack(port=0, handlers={}) as stack:
        sfn = stack.stepfunctions()
        activity = sfn.create_activity(name="approve")["activityArn"]
        env = {
            e["Name"]: e["Value"].replace("/app", str(app))
            for e in run["Environment"]
            if isinstance(e["Value"], str)
        }
        env.update(
            PATH=f"{shim.parent}:{os.environ['PATH']}",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",
        )
        script = re.sub(r"--api '[^']*'", f"--api '{stack.url}'", _script(run))
        script = script.replace("/app", str(app)).replace("--health-port 8080", "--health-port 0")
        process = subprocess.Popen(
            [*run["EntryPoint"], script],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            task = {"Type": "Task", "Resource": activity, "End": True}
            machine = sfn.create_state_machine(
                name="approvals",
                definition=json.dumps({"StartAt": "Approve", "States": {"Approve": task}}),
                roleArn="arn:aws:iam::000000000000:role/StepFlowLocal",
            )["stateMachineArn"]
            arns = [
                sfn.start_execution(stateMachineArn=machine, input=json.dumps({"total": total}))[
                    "executionArn"
                ]
                for total in (120, 5000)
            ]
            deadline = time.monotonic() + 90
            described = [sfn.describe_execution(executionArn=a) for a in arns]
            while any(d["status"] == "RUNNING" for d in described) and time.monotonic() < deadline:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                time.sleep(0.1)
                described = [sfn.describe_execution(executionArn=a) for a in arns]
            started = [
                sum(
                    e["type"] == "ActivityStarted"
                    for e in sfn.get_execution_history(executionArn=a)["events"]
                )
                for a in arns
            ]
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                _, err = process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                _, err = process.communicate()
    approved, refused = described
    assert approved["status"] == "SUCCEEDED", (approved, err)
    assert json.loads(approved["output"]) == {"total": 120, "approved": True}
    assert refused["status"] == "FAILED" and refused["error"] == "NeedsReview", refused
    assert started == [1, 1]
    assert process.returncode == 0, err


def test_fargate_kills_a_stopping_worker_only_after_it_would_have_left_by_itself() -> None:
    from stepflow.worker.runner import HARD_EXIT_MARGIN, POLL_JOIN_SECONDS
    from stepflow_cdk.fargate import MAX_STOP_SECONDS
    from stepflow_cdk.workers import MAX_GRACE_SECONDS, STOP_MARGIN_SECONDS

    # After SIGTERM the worker is gone within grace + POLL_JOIN_SECONDS + HARD_EXIT_MARGIN.
    assert STOP_MARGIN_SECONDS > POLL_JOIN_SECONDS + HARD_EXIT_MARGIN
    assert MAX_GRACE_SECONDS + STOP_MARGIN_SECONDS <= MAX_STOP_SECONDS
