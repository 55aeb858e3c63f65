"""StepFlow's pytest plugin, loaded as a user's test run loads it.

The ``pytest11`` entry point is registered when StepFlow is installed (CI's fresh
install). Where it is not (an editable install older than the entry point), the
plugin is loaded with ``-p stepflow.testing.pytest_plugin``, the module the entry
point names; the entry point itself is proven through a distribution made of
pyproject's own ``pytest11`` table.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
PLUGIN = "stepflow.testing.pytest_plugin"
ROOT = Path(__file__).resolve().parents[2]


def plugin_args() -> list[str]:
    """``-p`` the plugin, unless its entry point loads it already (``-p`` twice is an error)."""
    installed = any(ep.value == PLUGIN for ep in entry_points(group="pytest11"))
    return ["-p", "no:cacheprovider"] + ([] if installed else ["-p", PLUGIN])


IN_MEMORY = """
from stepflow.testing import Delay

WORK = {"StartAt": "W", "States": {"W": {"Type": "Task", "TimeoutSeconds": 10, "End": True,
        "Resource": "arn:aws:lambda:us-east-1:123456789012:function:work"}}}

def test_execute(stepflow_execute):
    result = stepflow_execute(WORK, 2, handlers={"work": lambda x: x * 3})
    assert result.result == 6 and result.state("W").input == 2

def test_env_is_fresh_and_virtual(stepflow_env):
    arn = stepflow_env.start(WORK, 1)
    stepflow_env.handlers["work"] = lambda x: Delay(60, x)
    stepflow_env.run(arn)
    assert stepflow_env.result(arn).error == "States.Timeout"
"""

LOCAL_CONFTEST = """
import pytest
from stepflow.local import LocalStack

STARTS = []
_start = LocalStack.start

def counting_start(self):
    STARTS.append(self)
    return _start(self)

LocalStack.start = counting_start

@pytest.fixture(scope="session")
def stepflow_local_handlers():
    return {"work": lambda x: x + 1}

@pytest.fixture(scope="session")
def stepflow_mock_config():
    return {"StateMachines": {"Flow": {"TestCases": {"Mocked": {"W": "Fixed"}}}},
            "MockedResponses": {"Fixed": {"0": {"Return": 100}}}}

def pytest_sessionfinish(session):
    print(f"local stacks started: {len(STARTS)}, running after the run: "
          f"{[s.url for s in STARTS if s._gateway is not None]}")
"""

LOCAL = """
import json, time

WORK = {"StartAt": "W", "States": {"W": {"Type": "Task", "End": True,
        "Resource": "arn:aws:lambda:us-east-1:123456789012:function:work"}}}

def finished(client, arn):
    for _ in range(600):
        found = client.describe_execution(executionArn=arn)
        if found["status"] != "RUNNING":
            return found
        time.sleep(0.05)
    raise AssertionError("still running")

def test_not_using_the_stack_starts_none():
    from conftest import STARTS
    assert STARTS == []

def test_first(stepflow_client):
    machine = stepflow_client.create_state_machine(
        name="Flow", definition=json.dumps(WORK),
        roleArn="arn:aws:iam::123456789012:role/R")["stateMachineArn"]
    arn = stepflow_client.start_execution(stateMachineArn=machine, input="1")["executionArn"]
    assert finished(stepflow_client, arn)["output"] == "2"

def test_second_shares_the_stack(stepflow_local, stepflow_client):
    assert stepflow_client.meta.endpoint_url == stepflow_local.url
    assert stepflow_local.verbosity == 0
    [machine] = [m["stateMachineArn"] for m in
                 stepflow_client.list_state_machines()["stateMachines"] if m["name"] == "Flow"]
    arn = stepflow_client.start_execution(
        stateMachineArn=machine + "#Mocked", input="1")["executionArn"]
    assert finished(stepflow_client, arn)["output"] == "100"
"""


def test_the_in_memory_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(IN_MEMORY)
    result = pytester.runpytest_inprocess(*plugin_args())
    result.assert_outcomes(passed=2)


def test_the_local_stack_starts_once_lazily_and_stops(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(LOCAL_CONFTEST)
    pytester.makepyfile(LOCAL)
    result = pytester.runpytest_subprocess(*plugin_args(), "-s")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*local stacks started: 1, running after the run: []*"])
    printed = result.stdout.str() + result.stderr.str()
    assert "HTTP/1.1" not in printed and '"Requests"' not in printed  # quiet: no access log


def test_importing_the_plugin_loads_neither_boto3_nor_the_runtime() -> None:
    code = (
        f"import sys, {PLUGIN}; "
        "print(sorted(m for m in ('boto3', 'botocore', 'moto', 'stepflow.runtime') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_entry_point_of_pyproject_loads_the_plugin(tmp_path: Path) -> None:
    """A distribution whose ``pytest11`` table is pyproject's: pytest loads the fixtures."""
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    assert table["pytest11"] == {"stepflow": PLUGIN}
    dist = tmp_path / "site" / "stepflow_entry_point-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: stepflow-entry-point\nVersion: 0\n"
    )
    lines = "".join(f"{name} = {value}\n" for name, value in table["pytest11"].items())
    (dist / "entry_points.txt").write_text("[pytest11]\n" + lines)
    (tmp_path / "test_uses_it.py").write_text(
        "def test_fixture(stepflow_execute):\n"
        "    assert stepflow_execute.__module__ == 'stepflow.testing.driver'\n"
    )
    installed = any(ep.value == PLUGIN for ep in entry_points(group="pytest11"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(ROOT)])}
    if installed:  # the real one loads it already: the test distribution must not add it twice
        env["PYTHONPATH"] = str(ROOT)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout
