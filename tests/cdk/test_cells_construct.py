"""StepFlowCells: a cells module shipped as a Lambda layer or as a Fargate worker service.

Each mode is synthesized once (module fixtures), with cdk-nag; the hostile cases fail
while the app is built, before anything is synthesized.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
cdk = pytest.importorskip("aws_cdk", reason="aws-cdk-lib is not installed (pip install -e .[cdk])")
from aws_cdk import aws_dynamodb as dynamodb  # noqa: E402
from aws_cdk import aws_iam as iam  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cdk"))
from stepflow_cdk.app import build_app  # noqa: E402
from stepflow_cdk.cells import StepFlowCells  # noqa: E402
from stepflow_cdk.cells_source import (  # noqa: E402
    CellsModuleError,
    cells_source,
    prune,
    stepflow_closure,
)
from stepflow_cdk.stack import StepFlowStack  # noqa: E402

MODULES = Path(__file__).resolve().parent / "cells_modules"
FILE_MODULE = MODULES / "order_cells.py"
PACKAGE = MODULES / "order_pkg"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:orders"

Synth = tuple[dict[str, Any], Any, Path]


def _synth(build: Any) -> Synth:
    app = cdk.App(context={"stepflow:bundle": "false"})
    stack = StepFlowStack(app, "StepFlow", bundle=False)
    build(stack)
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    assembly = app.synth()
    template = Template.from_stack(stack).to_json()
    return template, assembly.get_stack_by_name("StepFlow"), Path(assembly.directory)


@pytest.fixture(scope="module")
def inline() -> Synth:
    def build(stack: StepFlowStack) -> None:
        orders = dynamodb.Table.from_table_name(stack, "Orders", "orders")
        StepFlowCells(
            stack,
            "Cells",
            stepflow=stack,
            module=FILE_MODULE,
            grants=[
                iam.PolicyStatement(actions=["sns:Publish"], resources=[TOPIC]),
                orders.grant_write_data,
            ],
        )
        StepFlowCells(
            stack, "MoreCells", stepflow=stack, module=PACKAGE, import_name="order_pkg.cells"
        )

    return _synth(build)


@pytest.fixture(scope="module")
def worker() -> Synth:
    def build(stack: StepFlowStack) -> None:
        StepFlowCells(
            stack,
            "Cells",
            stepflow=stack,
            module=PACKAGE,
            import_name="order_pkg.cells",
            mode="worker",
            queue="orders",
            cells=["echo:2", "saga:compensate"],
            grants=[iam.PolicyStatement(actions=["sns:Publish"], resources=[TOPIC])],
        )

    return _synth(build)


def _of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]: r["Properties"]
        for r in _of(template, "AWS::Lambda::Function").values()
        if "POWERTOOLS_SERVICE_NAME" in r["Properties"].get("Environment", {}).get("Variables", {})
    }


def _statements(template: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    return [
        s
        for p in _of(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return actions if isinstance(actions, list) else [actions]


def _asset_dir(directory: Path, content: dict[str, Any]) -> Path:
    key = content["S3Key"]
    return directory / f"asset.{key.removesuffix('.zip')}"


def _nag(artifact: Any) -> list[str]:
    return [
        f"{m.level} {m.id} {m.entry.data}"
        for m in artifact.messages
        if "AwsSolutions" in str(m.entry.data)
    ]


TASK_FUNCTIONS = ("stepflow-stepper", "stepflow-runner", "stepflow-api")


def test_inline_cells_are_a_layer_of_the_functions_that_run_tasks(inline: Synth) -> None:
    template, _, directory = inline
    layers = _of(template, "AWS::Lambda::LayerVersion")
    cells_layers = {k for k in layers if k.startswith(("Cells", "MoreCells"))}
    assert len(cells_layers) == 2
    for service, function in _functions(template).items():
        names = {layer["Ref"] for layer in function["Layers"]}
        variables = function["Environment"]["Variables"]
        if service in TASK_FUNCTIONS:
            assert cells_layers <= names, service
            assert variables["STEPFLOW_CELLS"] == "order_cells,order_pkg.cells", service
        else:  # the sweeper and the outbox repair run no task
            assert not cells_layers & names and "STEPFLOW_CELLS" not in variables, service
        assert "STEPFLOW_CELL_QUEUES" not in variables
    (file_layer,) = [layers[k] for k in cells_layers if k.startswith("CellsLayer")]
    asset = _asset_dir(directory, file_layer["Properties"]["Content"])
    assert (asset / "python" / "order_cells.py").read_bytes() == FILE_MODULE.read_bytes()
    assert not (asset / "python" / "stepflow").exists()  # the stepflow layer has it
    (package_layer,) = [layers[k] for k in cells_layers if k.startswith("MoreCells")]
    asset = _asset_dir(directory, package_layer["Properties"]["Content"])
    assert (asset / "python" / "order_pkg" / "cells.py").is_file()


def test_inline_effects_get_a_stepflow_role_with_exactly_the_grants(inline: Synth) -> None:
    template, _, _ = inline
    roles = _of(template, "AWS::IAM::Role")
    (role_id,) = [k for k in roles if k.startswith("CellsExecutionRole")]
    role = roles[role_id]["Properties"]
    assert role["Path"] == "/stepflow/"
    trusted = {
        s["Principal"]["AWS"]["Fn::GetAtt"][0]
        for s in role["AssumeRolePolicyDocument"]["Statement"]
    }
    functions = {k: r["Properties"] for k, r in _of(template, "AWS::Lambda::Function").items()}
    stepper_runner = {
        functions[k]["Role"]["Fn::GetAtt"][0]
        for k in functions
        if k.startswith(("ComputeStepper", "ComputeRunner"))
    }
    assert trusted == stepper_runner and len(trusted) == 2
    statements = _statements(template, role_id)
    assert {a for s in statements for a in _actions(s)} == {
        "sns:Publish",
        "dynamodb:BatchWriteItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:DescribeTable",
    }
    for statement in statements:
        assert statement["Resource"] != "*", statement
        assert "orders" in json.dumps(statement["Resource"]), statement
    # The functions themselves got none of it: effects run with the execution role.
    for function_role in stepper_runner:
        granted = json.dumps(_statements(template, function_role))
        assert "sns:" not in granted and ":table/orders" not in granted
    (output,) = [k for k in template["Outputs"] if k.startswith("CellsRoleArn")]
    assert template["Outputs"][output]["Value"] == {"Fn::GetAtt": [role_id, "Arn"]}
    (unused,) = [k for k in roles if k.startswith("MoreCellsExecutionRole")]
    assert _statements(template, unused) == []  # no grants given, none granted


def test_inline_mode_is_cdk_nag_clean(inline: Synth) -> None:
    assert _nag(inline[1]) == []


def test_the_worker_service_runs_the_bundle_with_no_image_built(worker: Synth) -> None:
    template, _, directory = worker
    (task,) = [r["Properties"] for r in _of(template, "AWS::ECS::TaskDefinition").values()]
    containers = {c["Name"]: c for c in task["ContainerDefinitions"]}
    fetch, run = containers["Fetch"], containers["Worker"]
    for container in (fetch, run):
        image = container["Image"]
        assert isinstance(image, str) and image.startswith("public.ecr.aws/"), image
        assert not image.endswith(":latest") and ":" in image.rsplit("/", 1)[1]
        assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    assert task["RuntimePlatform"]["CpuArchitecture"] == "X86_64"  # the wheels' platform
    assert fetch["Essential"] is False and fetch["Command"][:2] == ["s3", "cp"]
    assert run["DependsOn"] == [{"Condition": "SUCCESS", "ContainerName": "Fetch"}]
    assert run["ReadonlyRootFilesystem"] is True
    (script,) = run["Command"]
    assert "python -m zipfile -e /app/bundle.zip /app/code" in script
    assert "exec python -m stepflow worker --cells order_pkg.cells --queue orders" in script
    assert "pip install" not in script  # the wheels were chosen at synth
    env = {e["Name"]: e["Value"] for e in run["Environment"]}
    assert env["STEPFLOW_CELLS"] == "order_pkg.cells" and env["PYTHONPATH"] == "/app/code"
    assert {"TABLE_NAME", "STEPFLOW_ENDPOINT", "AWS_DEFAULT_REGION"} <= set(env)
    assert "execute-api" in json.dumps(env["STEPFLOW_ENDPOINT"])
    # The stack's own resources, named as the stepper's settings name them, so that the
    # worker refuses the cells' effects on them (stepflow.aws.own_resources); the bucket
    # is named to be refused, not used: the worker's log has no payload store.
    own = (
        "TABLE_NAME",
        "QUEUE_URL",
        "TASKS_QUEUE_URL",
        "PAYLOAD_BUCKET",
        "STEPFLOW_OWN_FUNCTIONS",
        "STEPFLOW_OWN_QUEUES",
        "ACTIVITY_DLQ_ARN",
        "STEPFLOW_SIGNING_SECRET_ARN",
    )
    stepper = _functions(template)["stepflow-stepper"]["Environment"]["Variables"]
    for name in own:
        assert env[name] == stepper[name], name
    assert "StepFlow-stepper" in env["STEPFLOW_OWN_FUNCTIONS"].split(",")
    assert "STEPFLOW_SIGNING_KEY" not in env
    (service,) = [r["Properties"] for r in _of(template, "AWS::ECS::Service").values()]
    assert service["LaunchType"] == "FARGATE" and service["DesiredCount"] == 1
    assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"]["Rollback"] is True
    (group,) = [r["Properties"] for r in _of(template, "AWS::EC2::SecurityGroup").values()]
    assert "SecurityGroupIngress" not in group
    # The bundle: stepflow and the package, side by side (the asset the Fetch copies).
    (bundle,) = [p for p in directory.glob("asset.*") if (p / "order_pkg").is_dir()]
    assert (bundle / "stepflow" / "cells" / "runner.py").is_file()
    assert (bundle / "order_pkg" / "cells.py").is_file()
    assert bundle.name.removeprefix("asset.") in json.dumps(fetch["Command"])
    manifest = json.loads((directory / "StepFlow.assets.json").read_text())
    assert not manifest.get("dockerImages")  # nothing to build with Docker, at synth or deploy


def test_the_functions_route_the_cells_to_the_worker_queue(worker: Synth) -> None:
    template, _, _ = worker
    for service, function in _functions(template).items():
        variables = function["Environment"]["Variables"]
        assert "STEPFLOW_CELLS" not in variables, service
        if service in TASK_FUNCTIONS:
            assert variables["STEPFLOW_CELL_QUEUES"] == ("echo:2=orders,saga:compensate=orders"), (
                service
            )
    assert not _of(template, "AWS::Lambda::LayerVersion").keys() - {
        k for k in _of(template, "AWS::Lambda::LayerVersion") if k.startswith("Compute")
    }


def test_the_worker_role_holds_the_api_the_journal_payloads_bundle_and_grants(
    worker: Synth,
) -> None:
    template, _, _ = worker
    (task,) = [r["Properties"] for r in _of(template, "AWS::ECS::TaskDefinition").values()]
    statements = _statements(template, task["TaskRoleArn"]["Fn::GetAtt"][0])
    by_action = {a: s for s in statements for a in _actions(s)}
    assert set(by_action) == {
        "execute-api:Invoke",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "s3:GetObject",
        "sns:Publish",
    }
    assert json.dumps(by_action["execute-api:Invoke"]["Resource"]).endswith('"/POST/"]]}')
    for action in ("dynamodb:GetItem", "dynamodb:PutItem"):
        statement = by_action[action]
        assert statement["Resource"]["Fn::GetAtt"][0].startswith("StorageLog")  # no index
        leading = statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
        assert json.dumps(leading).startswith('[{"Fn::Join": ["", ["EX#arn:"')
    written = by_action["dynamodb:PutItem"]["Condition"]["ForAllValues:StringEquals"]
    assert set(written["dynamodb:Attributes"]) >= {"pk", "sk", "version", "result", "result_ref"}
    assert "dynamodb:Attributes" not in json.dumps(by_action["dynamodb:GetItem"])
    (s3,) = [s for s in statements if any(a.startswith("s3:") for a in _actions(s))]
    assert _actions(s3) == ["s3:GetObject"]
    bundle = json.dumps(s3["Resource"])  # the bundle's one object, not the assets bucket
    assert ".zip" in bundle and "cdk-" in bundle and "/*" not in bundle
    for statement in statements:
        assert statement["Resource"] != "*", statement
        assert not any(a.endswith(":*") or a == "*" for a in _actions(statement))


def test_worker_mode_is_cdk_nag_clean(worker: Synth) -> None:
    assert _nag(worker[1]) == []


# Hostile inputs: each fails while the app is built, saying why.


@pytest.mark.parametrize(
    ("path", "why"),
    [
        (MODULES / "missing.py", "does not exist"),
        (PACKAGE / "requirements.txt", "is not a Python module"),
        (MODULES, "without __init__.py"),
    ],
)
def test_a_path_that_is_not_a_module_is_refused(path: Path, why: str) -> None:
    with pytest.raises(CellsModuleError, match=why):
        cells_source(path)


def test_bad_names_and_broken_modules_are_refused(tmp_path: Path) -> None:
    (tmp_path / "my-cells.py").write_text("")
    with pytest.raises(CellsModuleError, match="not a valid Python module name"):
        cells_source(tmp_path / "my-cells.py")
    (tmp_path / "json.py").write_text("")
    with pytest.raises(CellsModuleError, match="shadow a standard library module"):
        cells_source(tmp_path / "json.py")
    (tmp_path / "stepflow").mkdir()
    (tmp_path / "stepflow" / "__init__.py").write_text("")
    with pytest.raises(CellsModuleError, match="shadow the stepflow package"):
        cells_source(tmp_path / "stepflow")
    (tmp_path / "pydantic.py").write_text("")
    with pytest.raises(CellsModuleError, match="shadow a module of stepflow's dependencies"):
        cells_source(tmp_path / "pydantic.py")
    (tmp_path / "heavy").mkdir()
    (tmp_path / "heavy" / "__init__.py").write_text("")
    with (tmp_path / "heavy" / "data.bin").open("wb") as sparse:
        sparse.truncate(65 * 2**20)
    with pytest.raises(CellsModuleError, match="holds 65 MB of files; at most 64 MB"):
        cells_source(tmp_path / "heavy")
    (tmp_path / "broken.py").write_text("def run(:\n")
    with pytest.raises(CellsModuleError, match="does not load: SyntaxError"):
        cells_source(tmp_path / "broken.py").cell_keys()
    (tmp_path / "empty.py").write_text("X = 1\n")
    with pytest.raises(CellsModuleError, match="defines no cell"):
        cells_source(tmp_path / "empty.py").cell_keys()
    with pytest.raises(CellsModuleError, match="not 'order_pkg' or a submodule"):
        cells_source(PACKAGE, import_name="os.path")
    with pytest.raises(CellsModuleError, match=r"requirements file .* does not exist"):
        cells_source(FILE_MODULE, requirements=tmp_path / "nope.txt")
    assert cells_source(PACKAGE).requirements == PACKAGE / "requirements.txt"
    assert cells_source(FILE_MODULE).requirements is None


def test_a_missing_module_fails_the_app_before_synth() -> None:
    context = {"stepflow:bundle": "false", "stepflow:nag": "false"}
    with pytest.raises(CellsModuleError, match=r"cells module .*nowhere\.py does not exist"):
        build_app({**context, "stepflow:cells": str(MODULES / "nowhere.py")})
    with pytest.raises(ValueError, match="cellsMode must be 'lambda' or 'worker'"):
        build_app({**context, "stepflow:cells": str(FILE_MODULE), "stepflow:cellsMode": "ec2"})


def test_two_modules_of_one_name_are_told_apart_and_not_both_inlined(tmp_path: Path) -> None:
    for folder, cell in (("a", "first"), ("b", "second")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "cells_mod.py").write_text(
            FILE_MODULE.read_text().replace('"reserve-stock"', f'"{cell}"')
        )
    # each is imported afresh: the second is not the first, cached under the same name
    assert cells_source(tmp_path / "a" / "cells_mod.py").cell_keys() == ["first@1.0"]
    assert cells_source(tmp_path / "b" / "cells_mod.py").cell_keys() == ["second@1.0"]
    app = cdk.App()
    stack = StepFlowStack(app, "StepFlow", bundle=False)
    StepFlowCells(stack, "A", stepflow=stack, module=tmp_path / "a" / "cells_mod.py")
    with pytest.raises(CellsModuleError, match="'cells_mod' is already shipped inline"):
        StepFlowCells(stack, "B", stepflow=stack, module=tmp_path / "b" / "cells_mod.py")


def test_routes_name_cells_of_the_module_and_a_valid_queue() -> None:
    app = cdk.App()
    stack = StepFlowStack(app, "StepFlow", bundle=False)
    common: dict[str, Any] = {"stepflow": stack, "module": FILE_MODULE, "mode": "worker"}
    with pytest.raises(CellsModuleError, match="cell 'charge' is not in the module"):
        StepFlowCells(stack, "A", cells=["charge"], **common)
    with pytest.raises(CellsModuleError, match="reserve-stock:x"):
        StepFlowCells(stack, "B", cells=["reserve-stock:x"], **common)
    with pytest.raises(CellsModuleError, match="queue 'a b' must be"):
        StepFlowCells(stack, "C", queue="a b", **common)
    with pytest.raises(CellsModuleError, match="queue 'a,b=c' must be"):
        StepFlowCells(stack, "C2", queue="a,b=c", **common)  # no second route smuggled in
    with pytest.raises(CellsModuleError, match="reserve-stock=x"):
        StepFlowCells(stack, "C3", cells=["reserve-stock=x,*"], **common)
    StepFlowCells(stack, "E", queue="one", **common)
    with pytest.raises(CellsModuleError, match="'\\*' is routed twice"):
        StepFlowCells(stack, "F", queue="two", **common)
    other = cdk.Stack(app, "Other")
    with pytest.raises(CellsModuleError, match="inside the StepFlow stack"):
        StepFlowCells(other, "D", stepflow=stack, module=FILE_MODULE)


def test_the_asset_hash_follows_the_module_and_its_requirements(tmp_path: Path) -> None:
    package = tmp_path / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("A = 1\n")
    first = cells_source(package).fingerprint("layer")
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert cells_source(package).fingerprint("layer") == first  # caches do not count
    (package / "requirements.txt").write_text("httpx\n")
    second = cells_source(package).fingerprint("layer")
    (package / "__init__.py").write_text("A = 2\n")
    assert len({first, second, cells_source(package).fingerprint("layer")}) == 3
    assert cells_source(package).fingerprint("worker") != cells_source(package).fingerprint("layer")


def _dist(target: Path, name: str, files: list[str]) -> None:
    info = target / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    for file in files:
        (target / file).parent.mkdir(parents=True, exist_ok=True)
        (target / file).write_text("x")
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in files))


def test_the_layer_keeps_only_what_stepflow_does_not_already_ship(tmp_path: Path) -> None:
    """pip resolves stepflow's dependencies and the module's together; what stepflow's
    pull in is pruned from the cells layer (a later layer would overwrite the stepflow
    layer's files under /opt/python)."""
    report = {
        "install": [
            {
                "metadata": {
                    "name": "pydantic",
                    "requires_dist": ["pydantic-core==2.1", "typing-extensions>=4"],
                }
            },
            {
                "metadata": {
                    "name": "pydantic_core",
                    "requires_dist": ['typing-extensions; extra == "x"'],
                }
            },
            {"metadata": {"name": "typing_extensions", "requires_dist": None}},
            {
                "metadata": {
                    "name": "aws_lambda_powertools",
                    "requires_dist": [
                        'aws-xray-sdk<3,>=2.8; extra == "tracer" or extra == "all"',
                        'fastjsonschema; extra == "validation"',
                    ],
                }
            },
            {"metadata": {"name": "aws-xray-sdk", "requires_dist": ["wrapt"]}},
            {"metadata": {"name": "wrapt"}},
            {"metadata": {"name": "fastjsonschema"}},  # the module's own, not the extra's
            {"metadata": {"name": "stripe", "requires_dist": ["requests>=2", "typing-extensions"]}},
            {"metadata": {"name": "requests", "requires_dist": []}},
        ]
    }
    closure = stepflow_closure(report)
    assert {"pydantic", "pydantic-core", "typing-extensions"} <= closure
    assert {"aws-lambda-powertools", "aws-xray-sdk", "wrapt"} <= closure  # [tracer]
    assert not {"stripe", "requests", "fastjsonschema"} & closure
    _dist(tmp_path, "pydantic", ["pydantic/__init__.py", "pydantic/v1/main.py"])
    _dist(tmp_path, "typing_extensions", ["typing_extensions.py"])
    _dist(tmp_path, "stripe", ["stripe/__init__.py"])
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "normalizer").write_text("#!python")
    assert sorted(prune(tmp_path, closure)) == ["pydantic", "typing-extensions"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stripe", "stripe-1.0.dist-info"]


def test_the_worker_container_command_unpacks_the_bundle_and_loads_the_cells(
    worker: Synth, tmp_path: Path
) -> None:
    """Run the synthesized container command as ECS would (``/app`` moved under tmp_path,
    the bundle zipped as ``Fetch`` leaves it), against an endpoint nobody listens on: the
    worker gets as far as creating its queue's activity, so the bundle unpacked, the
    module loaded by its import name and the table came from the environment."""
    import shutil
    import subprocess
    import zipfile

    template, _, directory = worker
    (task,) = [r["Properties"] for r in _of(template, "AWS::ECS::TaskDefinition").values()]
    run = {c["Name"]: c for c in task["ContainerDefinitions"]}["Worker"]
    (bundle,) = [p for p in directory.glob("asset.*") if (p / "order_pkg").is_dir()]
    app = tmp_path / "app"
    app.mkdir()
    with zipfile.ZipFile(app / "bundle.zip", "w") as archive:
        for file in bundle.rglob("*"):
            archive.write(file, file.relative_to(bundle))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "python"  # the venv's python (a symlink would lose the venv)
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    shim.chmod(0o755)
    env = {
        e["Name"]: e["Value"].replace("/app", str(app))
        for e in run["Environment"]
        if isinstance(e["Value"], str)
    }
    env.update(
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        STEPFLOW_ENDPOINT="http://127.0.0.1:9",
        TABLE_NAME="StepFlow-Log",
        AWS_DEFAULT_REGION="eu-west-1",
        AWS_ACCESS_KEY_ID="AKIDEXAMPLE",
        AWS_SECRET_ACCESS_KEY="secret",
        AWS_MAX_ATTEMPTS="1",
    )
    assert shutil.which("sh") is not None
    (script,) = run["Command"]
    done = subprocess.run(
        [*run["EntryPoint"], script.replace("/app", str(app))],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "cannot create the cell queue's activity" in done.stderr, done.stderr
    assert (app / "code" / "stepflow" / "cells" / "runner.py").is_file()
    assert (app / "code" / "order_pkg" / "cells.py").is_file()


_PROCESS = """
import json
from stepflow.aws.settings import Settings
from stepflow.aws.wiring import Wiring
from stepflow.cells.queues import CellQueues
wiring = Wiring(Settings.from_environ())
print(json.dumps({
    "cells": wiring.cell_modules.cells.keys(),
    "routes": dict(CellQueues.parse(wiring.settings.cell_queues).routes),
}))
"""


def _as_the_function_loads(
    template: dict[str, Any], service: str, path: list[Path]
) -> dict[str, Any]:
    """What a function's process loads from the template's environment, with ``path`` as
    Lambda puts its layers' ``python/`` on sys.path (a fresh interpreter: nothing cached)."""
    import subprocess

    variables = _functions(template)[service]["Environment"]["Variables"]
    # CloudFormation fills in the references (table name, queue URLs, ...) at deploy time
    env = {k: v if isinstance(v, str) else f"deployed-{k.lower()}" for k, v in variables.items()}
    env.update(
        STEPFLOW_ACCOUNT_ID="123456789012",
        PATH=os.environ["PATH"],
        PYTHONPATH=os.pathsep.join(str(p) for p in path),
        AWS_DEFAULT_REGION="eu-west-1",
    )
    done = subprocess.run(
        [sys.executable, "-c", _PROCESS], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    loaded: dict[str, Any] = json.loads(done.stdout)
    return loaded


def test_the_runner_loads_the_inline_cells_from_its_layers_and_environment(
    inline: Synth,
) -> None:
    template, _, directory = inline
    layers = _of(template, "AWS::Lambda::LayerVersion")
    path = [
        _asset_dir(directory, layers[k]["Properties"]["Content"]) / "python"
        for k in layers
        if k.startswith(("Cells", "MoreCells"))
    ]
    loaded = _as_the_function_loads(template, "stepflow-runner", path)
    assert loaded == {"cells": ["echo@2.1", "reserve-stock@1.0"], "routes": {}}


def test_cfn_lint_finds_no_errors_in_either_mode(inline: Synth, worker: Synth) -> None:
    from cfnlint.api import lint_all

    for template, _, _ in (inline, worker):
        errors = [str(m) for m in lint_all(json.dumps(template)) if m.rule.id.startswith("E")]
        assert errors == []


def test_the_app_flag_adds_the_construct() -> None:
    app = build_app(
        {
            "stepflow:bundle": "false",
            "stepflow:nag": "false",
            "stepflow:cells": str(FILE_MODULE),
            "stepflow:cellsMode": "worker",
            "stepflow:cellsQueue": "orders",
        }
    )
    cells = app.node.find_child("StepFlow").node.find_child("Cells")
    assert isinstance(cells, StepFlowCells) and cells.worker is not None
    assert cells.cell_keys == ["reserve-stock@1.0"]


def test_the_runner_routes_the_worker_cells_without_loading_them(worker: Synth) -> None:
    loaded = _as_the_function_loads(worker[0], "stepflow-runner", [])
    assert loaded == {"cells": [], "routes": {"echo:2": "orders", "saga:compensate": "orders"}}


def test_the_synthesized_worker_serves_its_cells_against_stepflow_local(
    worker: Synth, tmp_path: Path
) -> None:
    """The path that ships, short of AWS: the task definition's command and environment,
    run as ECS would (the bundle unpacked from its zip), serve the cell the stack routes to
    the queue; an execution started through boto3 succeeds with the effect's result. The
    stack loads no cell itself, so only the worker can have run it."""
    import subprocess
    import zipfile

    from stepflow.local import LocalStack
    from stepflow.local.stack import TABLE

    template, _, directory = worker
    (task,) = [r["Properties"] for r in _of(template, "AWS::ECS::TaskDefinition").values()]
    run = {c["Name"]: c for c in task["ContainerDefinitions"]}["Worker"]
    routes = _functions(template)["stepflow-runner"]["Environment"]["Variables"]
    (bundle,) = [p for p in directory.glob("asset.*") if (p / "order_pkg").is_dir()]
    app = tmp_path / "app"
    app.mkdir()
    with zipfile.ZipFile(app / "bundle.zip", "w") as archive:
        for file in bundle.rglob("*"):
            archive.write(file, file.relative_to(bundle))
    shim = tmp_path / "bin" / "python"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    shim.chmod(0o755)
    with LocalStack(port=0, handlers={}, cell_queues=routes["STEPFLOW_CELL_QUEUES"]) as stack:
        env = {
            e["Name"]: e["Value"].replace("/app", str(app))
            for e in run["Environment"]
            if isinstance(e["Value"], str)
        }
        env.update(
            PATH=f"{shim.parent}:{os.environ['PATH']}",
            STEPFLOW_ENDPOINT=stack.url,
            STEPFLOW_DYNAMODB_ENDPOINT=stack.aws_endpoint,
            TABLE_NAME=TABLE,
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",
        )
        (script,) = run["Command"]
        process = subprocess.Popen(
            [*run["EntryPoint"], script.replace("/app", str(app)).replace("8080", "0")],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            sfn = stack.stepfunctions()
            definition = {
                "StartAt": "Echo",
                "States": {
                    "Echo": {
                        "Type": "Task",
                        "Resource": "arn:aws:states:::stepflow:cell:echo:2",
                        "End": True,
                    }
                },
            }
            machine = sfn.create_state_machine(
                name="cells-worker-service",
                definition=json.dumps(definition),
                roleArn="arn:aws:iam::000000000000:role/StepFlowLocal",
            )["stateMachineArn"]
            arn = sfn.start_execution(stateMachineArn=machine, input='{"n": 41}')["executionArn"]
            deadline = time.monotonic() + 90
            described = sfn.describe_execution(executionArn=arn)
            while described["status"] == "RUNNING" and time.monotonic() < deadline:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                time.sleep(0.1)
                described = sfn.describe_execution(executionArn=arn)
        finally:
            process.terminate()
            try:
                _, err = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                _, err = process.communicate()
    assert described["status"] == "SUCCEEDED", (described, err)
    assert json.loads(described["output"]) == {"n": 42}


def test_bundling_installs_for_the_lambda_platform_and_prunes_only_the_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """try_bundle as CDK calls it, with pip replaced by a fake that installs pydantic
    (stepflow's) and stripe (the module's): the layer keeps stripe only, the worker's
    bundle both, plus stepflow. The pip command line is the layer's (no Docker)."""
    import subprocess

    from stepflow_cdk import cells_source as bundling

    commands: list[list[str]] = []

    def fake_run(command: list[str], check: bool) -> None:
        commands.append(command)
        target = Path(command[command.index("--target") + 1])
        report = Path(command[command.index("--report") + 1])
        _dist(target, "pydantic", ["pydantic/__init__.py"])
        _dist(target, "stripe", ["stripe/__init__.py"])
        installed = [
            {"metadata": {"name": "pydantic", "requires_dist": []}},
            {"metadata": {"name": "stripe", "requires_dist": ["pydantic>=2"]}},
        ]
        report.write_text(json.dumps({"install": installed}))

    monkeypatch.setattr(subprocess, "run", fake_run)
    source = cells_source(PACKAGE, import_name="order_pkg.cells")
    layer, service = tmp_path / "layer", tmp_path / "worker"
    bundling.CellsBundling(source, subdir="python", with_stepflow=False, install=True).try_bundle(
        str(layer)
    )
    bundling.CellsBundling(source, subdir="", with_stepflow=True, install=True).try_bundle(
        str(service)
    )
    assert sorted(p.name for p in (layer / "python").iterdir()) == [
        "order_pkg",
        "stripe",
        "stripe-1.0.dist-info",
    ]
    assert {"pydantic", "stripe", "stepflow", "order_pkg"} <= {p.name for p in service.iterdir()}
    for command in commands:
        flags = " ".join(command)
        assert "--platform manylinux2014_x86_64 --python-version 3.12" in flags
        assert "--only-binary=:all:" in command and "docker" not in flags
        assert command[-2:] == ["-r", str(PACKAGE / "requirements.txt")]
        assert "pydantic>=2.7,<3" in command  # resolved with stepflow's own requirements
    assert len(commands) == 2


def test_the_worker_may_write_every_attribute_a_journal_or_lease_record_has() -> None:
    """The worker's PutItem is limited to LEASE_ATTRIBUTES (dynamodb:Attributes): a lease
    record written through the real DynamoDB log, with every field set and results small,
    compressed and offloaded, has no other attribute (else IAM would refuse the worker)."""
    from unittest import mock

    from moto import mock_aws
    from stepflow.aws import DynamoDBLog, create_table
    from stepflow.aws.clients import client as new_client
    from stepflow.aws.s3_payloads import S3PayloadStore
    from stepflow.runtime.leases import TaskLease
    from stepflow_cdk.cells_worker import LEASE_ATTRIBUTES

    fake = {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with mock.patch.dict(os.environ, fake), mock_aws():
        dynamodb, s3 = new_client("dynamodb"), new_client("s3")
        create_table(dynamodb, "log")
        s3.create_bucket(Bucket="payloads")
        log = DynamoDBLog("log", client=dynamodb, payloads=S3PayloadStore("payloads", client=s3))
        arn = "arn:aws:states:us-east-1:123456789012:execution:m:e"
        results = {
            "small": {"ok": True},
            "compressed": {"text": "a" * 20_000},
            "offloaded": {"blob": os.urandom(600_000).hex()},
        }
        for name, result in results.items():
            lease = TaskLease(
                arn, f"fx#a#run#{name}", version=1, delivery=2, owner="w", until=1.5,
                released=True, expired=1, queue="q", receipt="r", lease_seconds=3.0,
                result=result,
            )  # fmt: skip
            log.put_lease(lease)
        items = dynamodb.scan(TableName="log")["Items"]
    names = {name for item in items for name in item}
    assert {"result", "result_z", "result_ref"} <= names  # each form was written
    assert names <= set(LEASE_ATTRIBUTES), names - set(LEASE_ATTRIBUTES)
