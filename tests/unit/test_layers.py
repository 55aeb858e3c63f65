"""Layers: AWS SDKs are imported plainly and only at the edges; integrations take injected clients.

The import-linter contracts in pyproject.toml (run by ``make lint``) check the static
import graph; these tests cover what it cannot see: dynamic imports by name, and what
importing the core actually loads.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from stepflow.integrations import IntegrationInvoker, default_registry
from stepflow.runtime.clients import FixedClients

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "layers" / "stepflow" / "stepflow", ROOT / "functions", ROOT / "cdk"]
SDKS = frozenset({"boto3", "botocore"})
# Rewritten on the wiring branch (one typed settings object and one build()); these still
# build their boto3 clients by name until it lands. Drop each entry when its file is clean.
CORE = (
    "stepflow.asl",
    "stepflow.data",
    "stepflow.engine",
    "stepflow.runtime",
    "stepflow.activities",
)


def dynamic_sdk_imports(source: str) -> list[int]:
    """Lines of ``importlib.import_module("boto3...")`` / ``__import__("botocore...")`` calls."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        first = node.args[0]
        if (
            name in ("import_module", "__import__")
            and isinstance(first, ast.Constant)
            and isinstance(first.value, str)
            and first.value.split(".")[0] in SDKS
        ):
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ('import importlib\nc = importlib.import_module("boto3").client("sqs")\n', [2]),
        ('from importlib import import_module\nC = import_module("botocore.config")\n', [2]),
        ('boto3 = __import__("boto3")\n', [1]),
        ('import importlib\nm = importlib.import_module("stepflow.aws")\n', []),
        ("import boto3\nfrom botocore.config import Config\n", []),
    ],
)
def test_the_scan_finds_sdk_imports_by_name(source: str, found: list[int]) -> None:
    assert dynamic_sdk_imports(source) == found


def test_no_sdk_is_imported_by_name() -> None:
    offenders = []
    for base in SOURCES:
        for path in sorted(base.rglob("*.py")):
            offenders += [f"{path}:{line}" for line in dynamic_sdk_imports(path.read_text())]
    assert offenders == [], "import boto3/botocore plainly, at the edge"


def stepflow_imports_by_name(source: str) -> list[int]:
    """Lines that import a module of stepflow by name (``importlib.import_module``)."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and node.args
        and (getattr(node.func, "attr", None) or getattr(node.func, "id", None))
        in ("import_module", "__import__")
        and isinstance(node.args[0], ast.Constant)
        and str(node.args[0].value).split(".")[0] == "stepflow"
    ]


def test_the_core_imports_its_own_modules_plainly() -> None:
    """An import by name hides a dependency (and any cycle) from lint-imports."""
    core = ROOT / "layers" / "stepflow" / "stepflow"
    offenders = [
        f"{path}:{line}"
        for package in CORE
        for path in sorted((core / package.split(".")[1]).rglob("*.py"))
        for line in stepflow_imports_by_name(path.read_text())
    ]
    assert offenders == []


def test_each_runtime_module_imports_first_without_a_cycle() -> None:
    runtime = ROOT / "layers" / "stepflow" / "stepflow" / "runtime"
    for name in (
        "map_pages",
        "map_express",
        "express",
        "map_runs",
        "map_run_create",
        "map_run_events",
        "map_run_window",
        "stepper",
        "stepper_batch",
        "stepper_commit",
        "polled_jobs",
    ):
        assert (runtime / f"{name}.py").exists()
        probe = f"import stepflow.runtime.{name}"
        subprocess.run([sys.executable, "-c", probe], check=True, cwd=ROOT, capture_output=True)


def test_importing_the_core_loads_no_sdk_and_no_edge() -> None:
    probe = (
        f"import sys\nimport {', '.join(CORE)}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'boto3', 'botocore', 'moto'}))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[:2] in (\n"
        "    ['stepflow', 'aws'], ['stepflow', 'api'], ['stepflow', 'local'])))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert run.stdout.splitlines() == ["[]", "[]"]


class Sender:
    """An SQS stand-in that records each send, or raises what it is given."""

    def __init__(self, error: Exception | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.error = error

    def send_message(self, **request: Any) -> Any:
        self.sent.append(request)
        if self.error is not None:
            raise self.error
        return {"MessageId": "m1"}


class SQSError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(f"An error occurred ({code})")
        self.response = {"Error": {"Code": code}}


SEND = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"


def invoker(sqs: Sender) -> IntegrationInvoker:
    return IntegrationInvoker(default_registry(), FixedClients(sqs=sqs))


def test_the_sqs_callback_goes_once_through_the_injected_sender() -> None:
    sqs = Sender()
    request = {"QueueUrl": "q", "MessageBody": {"token": "t"}, "MessageGroupId": "g", "X": 1}
    outcome = invoker(sqs)({"resource": SEND, "input": request})
    assert outcome.ok and outcome.output["MessageId"] == "m1"
    assert sqs.sent == [{"MessageBody": '{"token":"t"}', "QueueUrl": "q", "MessageGroupId": "g"}]


def test_an_sqs_error_fails_the_task_with_its_code() -> None:
    sent = invoker(Sender(SQSError("QueueDoesNotExist")))
    outcome = sent({"resource": SEND, "input": {"QueueUrl": "q", "MessageBody": "m"}})
    assert (outcome.ok, outcome.error) == (False, "SQS.QueueDoesNotExist")
