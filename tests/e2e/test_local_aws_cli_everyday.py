"""The AWS CLI's everyday Step Functions commands against ``stepflow local``, as the README says.

The real ``aws`` command (skipped where it is not installed), with dummy
credentials, a region and ``--endpoint-url``; each command's answer is read as
the CLI prints it. Tags, start-sync-execution and test-state are covered apart.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stepflow.local import LocalStack

AWS = shutil.which("aws") or "/root/.pyenv/shims/aws"
ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"
WAIT = 30.0  # bounds a hang only


def installed() -> bool:
    if not os.access(AWS, os.X_OK):
        return False
    try:
        probe = subprocess.run([AWS, "--version"], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not installed(), reason="the AWS CLI is not installed")


class Cli:
    """``aws stepfunctions ... --endpoint-url URL`` with the README's environment."""

    def __init__(self, url: str, home: Path) -> None:
        self.url = url
        self.env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(home / "config"),  # nothing of the machine's own setup
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
            "AWS_PAGER": "",
        }
        self.env.pop("AWS_PROFILE", None)
        self.ran: list[str] = []

    def __call__(self, command: str, *args: str) -> Any:
        argv = [AWS, "stepfunctions", command, "--endpoint-url", self.url, *args]
        done = subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, (command, done.stderr)
        self.ran.append(command)
        return json.loads(done.stdout) if done.stdout.strip() else None


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0) as running:
        yield running


def definition(states: dict[str, Any], start: str) -> str:
    return json.dumps({"StartAt": start, "States": states})


def test_the_everyday_commands(stack: LocalStack, tmp_path: Path) -> None:
    aws = Cli(stack.url, tmp_path)
    hold = definition({"Hold": {"Type": "Wait", "Seconds": 3600, "End": True}}, "Hold")
    waits = aws(
        "create-state-machine", "--name", "waits", "--role-arn", ROLE, "--definition", hold
    )["stateMachineArn"]
    activity = aws("create-activity", "--name", "approvals")["activityArn"]
    ask = definition({"Ask": {"Type": "Task", "Resource": activity, "End": True}}, "Ask")
    approves = aws(
        "create-state-machine", "--name", "approves", "--role-arn", ROLE, "--definition", ask
    )["stateMachineArn"]
    machines = aws("list-state-machines")["stateMachines"]
    assert sorted(m["name"] for m in machines) == ["approves", "waits"]

    # a long execution: described, its history read, then stopped
    held = aws(
        "start-execution", "--state-machine-arn", waits, "--name", "held", "--input", '{"a": 1}'
    )["executionArn"]
    described = aws("describe-execution", "--execution-arn", held)
    assert (described["status"], json.loads(described["input"])) == ("RUNNING", {"a": 1})
    events = aws("get-execution-history", "--execution-arn", held)["events"]
    assert [e["type"] for e in events] == ["ExecutionStarted", "WaitStateEntered"]
    aws("stop-execution", "--execution-arn", held, "--error", "Operator", "--cause", "not today")
    stopped = aws("describe-execution", "--execution-arn", held)
    assert (stopped["status"], stopped["error"], stopped["cause"]) == (
        "ABORTED", "Operator", "not today",
    )  # fmt: skip

    # an activity: its task fetched by a "worker" and answered, once
    asked = aws("start-execution", "--state-machine-arn", approves, "--input", '{"amount": 12}')[
        "executionArn"
    ]
    task = aws("get-activity-task", "--activity-arn", activity, "--worker-name", "cli")
    assert json.loads(task["input"]) == {"amount": 12}
    aws("send-task-success", "--task-token", task["taskToken"], "--task-output", '{"ok": true}')
    deadline = time.monotonic() + WAIT
    while (answered := aws("describe-execution", "--execution-arn", asked))["status"] == "RUNNING":
        assert time.monotonic() < deadline, answered
        time.sleep(0.2)
    assert (answered["status"], json.loads(answered["output"])) == ("SUCCEEDED", {"ok": True})
    types = [e["type"] for e in aws("get-execution-history", "--execution-arn", asked)["events"]]
    assert (types.count("ActivityStarted"), types.count("ActivitySucceeded")) == (1, 1)

    # a version, an alias on it, an execution through the alias
    version = aws(
        "publish-state-machine-version", "--state-machine-arn", waits, "--description", "v1"
    )["stateMachineVersionArn"]
    assert version == f"{waits}:1"
    alias = aws(
        "create-state-machine-alias",
        "--name", "live",
        "--routing-configuration", f"stateMachineVersionArn={version},weight=100",
    )["stateMachineAliasArn"]  # fmt: skip
    assert alias == f"{waits}:live"
    live = aws("start-execution", "--state-machine-arn", alias, "--name", "live1")["executionArn"]
    on_alias = aws("describe-execution", "--execution-arn", live)
    assert (on_alias["stateMachineVersionArn"], on_alias["stateMachineAliasArn"]) == (
        version, alias,
    )  # fmt: skip

    listed = aws("list-executions", "--state-machine-arn", waits)["executions"]
    assert [(e["name"], e["status"]) for e in listed] == [("live1", "RUNNING"), ("held", "ABORTED")]
    by_alias = aws("list-executions", "--state-machine-arn", alias)["executions"]
    assert [e["name"] for e in by_alias] == ["live1"]
    aborted = aws("list-executions", "--state-machine-arn", waits, "--status-filter", "ABORTED")
    assert [e["name"] for e in aborted["executions"]] == ["held"]
    assert set(aws.ran) >= {
        "create-state-machine", "list-state-machines", "start-execution", "describe-execution",
        "get-execution-history", "stop-execution", "create-activity", "get-activity-task",
        "send-task-success", "publish-state-machine-version", "create-state-machine-alias",
        "list-executions",
    }  # fmt: skip
