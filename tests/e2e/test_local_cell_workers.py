"""Cells on a task queue through boto3 against ``stepflow local``, served by worker processes.

The stack routes ``three-bumps:1`` to cell queue ``e2e`` (``STEPFLOW_CELL_QUEUES``)
and loads no cell itself; ``stepflow worker --cells tests/worker/cells_module.py``
processes run it, with the effect journal in the stack's table on moto. Leases
last 2 s (``STEPFLOW_ACTIVITY_LEASE_SECONDS``), so a dead worker's task goes to
the next one quickly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from stepflow.activities.tokens import parse
from stepflow.cells import IdempotencyKey
from stepflow.cells.queues import activity_name, task_body
from stepflow.local import LocalStack
from stepflow.local.stack import TABLE

from tests.e2e.test_local_stack import ROLE
from tests.e2e.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 2
CELLS_MODULE = "tests/worker/cells_module.py"
CELL = "arn:aws:states:::stepflow:cell:three-bumps:1"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(
        port=0,
        handlers={},
        cell_queues="three-bumps:1=e2e,three-bumps:2=stale",
        activity_lease_seconds=LEASE_SECONDS,
    ) as running:
        yield running


def machine(sfn: Any, name: str, resource: str = CELL) -> str:
    definition = {
        "StartAt": "Bump",
        "States": {"Bump": {"Type": "Task", "Resource": resource, "End": True}},
    }
    return str(
        sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)[
            "stateMachineArn"
        ]
    )


def spawn(stack: LocalStack, calls: Path, **env: str) -> subprocess.Popen[str]:
    """``stepflow worker --cells`` as its own process (what ``stepflow local`` prints)."""
    command = [
        sys.executable,
        "-m",
        "stepflow",
        "worker",
        "--cells",
        "tests/worker/cells_module.py",
    ]
    command += ["--queue", "e2e", "--endpoint-url", stack.url, "--table", TABLE]
    command += ["--dynamodb-endpoint", stack.aws_endpoint, "--concurrency", "1"]
    command += ["--heartbeat", "0.5", "--grace", "1"]
    environment = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        "CELLS_CALLS": str(calls),
        **env,
    }
    return subprocess.Popen(
        command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.terminate()
    try:
        _, err = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return err


def test_a_worker_killed_after_two_effects_leaves_the_third_to_the_next(
    stack: LocalStack, tmp_path: Path
) -> None:
    sfn = stack.stepfunctions()
    arn = sfn.start_execution(
        stateMachineArn=machine(sfn, "cells-crash"), input=json.dumps({"start": 1})
    )["executionArn"]
    calls = tmp_path / "calls"
    first = spawn(stack, calls, CELLS_CRASH_AT="2")  # dies when asked for effect 3
    try:
        assert first.wait(timeout=60) == 17, first.stderr.read() if first.stderr else ""
    finally:
        stop(first)
    assert sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
    second = spawn(stack, calls)
    try:
        described = wait_for(sfn, arn, timeout=60)
    finally:
        err = stop(second)
    assert described["status"] == "SUCCEEDED", err
    assert json.loads(described["output"]) == {"total": 1 + 10 + 11 + 12}
    lines = [line.split() for line in calls.read_text().splitlines()]
    performed = Counter(int(n) for _, n, _, _ in lines)
    assert performed == {0: 1, 1: 1, 2: 1}  # effects 1-2 zero more times, effect 3 once
    by_effect = {int(n): (int(pid), attempt, token) for pid, n, attempt, token in lines}
    assert by_effect[0][0] == by_effect[1][0] == first.pid
    assert by_effect[2][0] == second.pid
    [attempt] = {attempt for _, attempt, _ in by_effect.values()}
    for n, (_, _, token) in by_effect.items():  # the keys an inline run uses
        assert token == IdempotencyKey(arn, "Bump", attempt, n, "run").token
    # Two deliveries, one per lease: the dead worker's and the second worker's.
    assert stack.wiring is not None
    lease = stack.wiring.log.lease(arn, attempt)
    assert lease is not None and lease.delivery == 2
    events = sfn.get_execution_history(executionArn=arn)["events"]
    types = [e["type"] for e in events]
    assert types.count("TaskStarted") == 1 and types.count("TaskSucceeded") == 1
    assert not [t for t in types if t.startswith("Activity")]
    # The second worker's run in the history: two effects replayed, the third performed.
    effects = [t for t in types if t.startswith("StepFlowEffect")]
    assert effects == ["StepFlowEffectReplayed"] * 2 + ["StepFlowEffectSucceeded"]


def test_each_lease_hands_the_task_out_once_and_a_stale_token_is_refused(
    stack: LocalStack,
) -> None:
    sfn = stack.stepfunctions()
    arn = sfn.start_execution(
        stateMachineArn=machine(sfn, "cells-stale", CELL[:-1] + "2"), input=json.dumps({"start": 5})
    )["executionArn"]
    # A queue of its own (major 2): the test is the only worker polling it.
    queue = sfn.create_activity(name=activity_name("stale"))["activityArn"]

    def poll() -> dict[str, Any]:
        return dict(sfn.get_activity_task(activityArn=queue, workerName="test"))

    first = {}
    deadline = time.monotonic() + 30
    while not first.get("taskToken") and time.monotonic() < deadline:
        first = poll()
    body = task_body(json.loads(first["input"]))
    assert (body["execution_arn"], body["state_name"], body["input"]) == (arn, "Bump", {"start": 5})
    assert "StepFlowCellTask" not in sfn.describe_execution(executionArn=arn)["input"]
    # The next poll waits for the lease to run out (no worker heartbeats it), then gets
    # the second delivery: none is skipped and none handed out twice.
    second = poll()
    assert parse(first["taskToken"]).delivery == 1
    assert parse(second["taskToken"]).delivery == 2
    with pytest.raises(ClientError) as refused:
        sfn.send_task_success(taskToken=first["taskToken"], output='{"total": 0}')
    assert refused.value.response["Error"]["Code"] == "TaskTimedOut"
    sfn.send_task_success(taskToken=second["taskToken"], output='{"total": 99}')
    assert wait_for(sfn, arn)["status"] == "SUCCEEDED"


def test_the_printed_worker_command_names_the_stack_s_own_resources(stack: LocalStack) -> None:
    """``stepflow local`` prints each worker's command with the stack's own resources."""
    import shlex

    from stepflow.cli.worker import worker_options
    from stepflow.local.stack import BUCKET, QUEUE, TASKS_QUEUE
    from stepflow.worker.cli import denied_endpoints_of, own_resources_of

    commands = stack.worker_commands()
    assert [c.split("--queue ")[1].split()[0] for c in commands] == ["e2e", "stale"]
    argv = shlex.split(commands[0])[2:]  # after "stepflow worker"
    argv[argv.index("MODULE")] = CELLS_MODULE
    args = worker_options(argv)
    own = own_resources_of(args, environ={})  # nothing from the environment: the flags only
    sqs = stack.client("sqs")
    for queue in (QUEUE, TASKS_QUEUE):
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        assert own.named_in(url) == ("queue", queue)
    assert own.owns("queue", f"{QUEUE}-dlq") and own.owns("queue", f"{TASKS_QUEUE}-dlq")
    assert own.owns("bucket", BUCKET) and own.owns("table", TABLE)
    assert own.owns("queue", "stepflow-tq-stepflow-cells-e2e")  # the activity queues
    denied = denied_endpoints_of(args, environ={})
    for url in (stack.url, stack.aws_endpoint):
        host, port = url.split("//")[1].split("/")[0].rsplit(":", 1)
        assert denied.refusal(host, int(port)) is not None, url
