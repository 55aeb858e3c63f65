"""Hooks through ``stepflow local`` with boto3: the stack's stream poller feeds the real
hooks dispatcher handler from moto's DynamoDB stream; a recording hook counts what arrives.

Every hook-visible event of each execution's history (Parallel, Map, a caught error)
reaches the hook exactly once, in commit order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.hooks import kind_of
from stepflow.local import LocalStack

from tests.hook_support import HANDLERS, INPUT, MACHINE, RecordingHook

ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"
PATIENCE = 60.0
"""How long the test waits for work to finish before failing (never asserted as a timing)."""


@pytest.fixture(scope="module")
def hooked() -> Iterator[tuple[LocalStack, RecordingHook]]:
    hook = RecordingHook()
    with LocalStack(port=0, handlers=HANDLERS, hooks=[hook]) as stack:
        yield stack, hook


def wait_for(check: Any) -> Any:
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("gave up waiting")


def test_the_poller_delivers_every_event_once_in_order(
    hooked: tuple[LocalStack, RecordingHook],
) -> None:
    stack, hook = hooked
    sfn = stack.stepfunctions()
    machine = sfn.create_state_machine(name="hooked", definition=json.dumps(MACHINE), roleArn=ROLE)[
        "stateMachineArn"
    ]
    arns = [
        sfn.start_execution(stateMachineArn=machine, name=f"run-{i}", input=json.dumps(INPUT))[
            "executionArn"
        ]
        for i in range(3)
    ]
    for arn in arns:
        wait_for(lambda arn=arn: sfn.describe_execution(executionArn=arn)["status"] != "RUNNING")
        assert sfn.describe_execution(executionArn=arn)["status"] == "SUCCEEDED"
    for arn in arns:
        history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        expected = [e["id"] for e in history if kind_of(e["type"]) is not None]
        wait_for(lambda arn=arn, expected=expected: len(hook.ids(arn)) >= len(expected))
        assert hook.ids(arn) == expected
    assert stack.stream_poller is not None and stack.stream_poller.given_up == []
    last = [e for e in hook.events if e.execution.execution_arn == arns[0]][-1]
    assert last.kind == "ExecutionSucceeded" and last.execution.name == "run-0"
    assert last.execution.state_machine_arn == machine


def test_an_unknown_hook_name_stops_the_start_and_leaves_nothing_running() -> None:
    with pytest.raises(ValueError, match="unknown hooks"):
        LocalStack(port=0, hook_names="nope").start()
