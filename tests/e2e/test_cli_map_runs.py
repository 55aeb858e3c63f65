"""The Map Run API through the AWS CLI (``aws stepfunctions ...``) against ``stepflow local``.

The CLI signs and shapes its requests itself (not boto3's client object in this
process), so this proves the gateway routes ListMapRuns, DescribeMapRun and
UpdateMapRun as the CLI sends them. Skipped when the ``aws`` command is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.local import LocalStack

from tests.e2e.waiting import wait_for

AWS = shutil.which("aws")
pytestmark = pytest.mark.skipif(AWS is None, reason="the AWS CLI is not installed")

ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"
DEFINITION = {
    "StartAt": "Each",
    "States": {
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "Label": "Cli",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Twice",
                "States": {"Twice": {"Type": "Pass", "Parameters": {"v.$": "$.v"}, "End": True}},
            },
            "End": True,
        }
    },
}


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0) as running:
        yield running


def cli(stack: LocalStack, *args: str) -> tuple[int, Any]:
    """``aws stepfunctions <args>`` against the stack: (exit code, parsed JSON or stderr)."""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_PAGER": "",
    }
    env.pop("AWS_PROFILE", None)
    assert AWS is not None
    done = subprocess.run(
        [AWS, "stepfunctions", *args, "--endpoint-url", stack.url, "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        return done.returncode, done.stderr
    return 0, json.loads(done.stdout) if done.stdout.strip() else {}


def test_list_describe_and_update_map_runs_through_the_aws_cli(stack: LocalStack) -> None:
    sfn = stack.stepfunctions()
    machine = sfn.create_state_machine(
        name="CliRuns", definition=json.dumps(DEFINITION), roleArn=ROLE
    )["stateMachineArn"]
    items = [{"v": i} for i in range(3)]
    execution = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"items": items}))[
        "executionArn"
    ]
    assert wait_for(sfn, execution, timeout=120)["status"] == "SUCCEEDED"

    code, listed = cli(stack, "list-map-runs", "--execution-arn", execution)
    assert code == 0, listed
    [run] = listed["mapRuns"]
    assert run["executionArn"] == execution and ":mapRun:CliRuns/Cli:" in run["mapRunArn"]

    code, described = cli(stack, "describe-map-run", "--map-run-arn", run["mapRunArn"])
    assert code == 0, described
    assert described["status"] == "SUCCEEDED"
    assert described["itemCounts"]["succeeded"] == described["itemCounts"]["total"] == 3

    # a finished run cannot be updated: AWS's ValidationException, through the CLI's error path
    code, error = cli(
        stack, "update-map-run", "--map-run-arn", run["mapRunArn"], "--max-concurrency", "2"
    )
    assert code != 0 and "ValidationException" in error

    code, error = cli(stack, "list-map-runs", "--execution-arn", execution + "-missing")
    assert code != 0 and "ExecutionDoesNotExist" in error
