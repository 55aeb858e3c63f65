"""``stepflow watch`` through CliRunner against ``stepflow local``: live progress, exit codes.

The execution is still running (held in a gated task) when the watch starts; the
watch prints one line per state entered, as ``make run``'s renderer does.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from stepflow.api import lambda_handler
from stepflow.live import command
from stepflow.live.command import watch_command
from stepflow.local import LocalStack
from stepflow.local.gateway import Gateway

from tests.e2e.test_live_local import GATED, PATIENCE, ROLE
from tests.hook_support import HANDLERS, INPUT

FAILING: dict[str, Any] = {
    "StartAt": "Gate",
    "States": {
        "Gate": {"Type": "Task", "Resource": GATED["States"]["Gate"]["Resource"], "Next": "No"},
        "No": {"Type": "Fail", "Error": "Nope", "Cause": "on purpose"},
    },
}


class Gate:
    """The ``gate`` task: counts its calls and blocks until released."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.called = threading.Event()

    def __call__(self, value: Any) -> Any:
        self.called.set()
        if not self.open.wait(PATIENCE):
            raise RuntimeError("the gate was never opened")
        return value


@pytest.fixture(scope="module")
def stack_and_gate() -> Iterator[tuple[LocalStack, Gate]]:
    gate = Gate()
    with LocalStack(port=0, handlers={**HANDLERS, "gate": gate}) as stack:
        yield stack, gate


def _start(stack: LocalStack, machine: dict[str, Any], name: str) -> str:
    sfn = stack.stepfunctions()
    arn = sfn.create_state_machine(name=name, definition=json.dumps(machine), roleArn=ROLE)
    started = sfn.start_execution(
        stateMachineArn=arn["stateMachineArn"], name=name, input=json.dumps(INPUT)
    )
    return str(started["executionArn"])


def _watch_while_gated(
    stack: LocalStack, gate: Gate, machine: dict[str, Any], name: str, url: str = ""
) -> tuple[str, Any]:
    """Start an execution and watch it; the gate opens once its task was called (live)."""
    gate.open.clear()
    gate.called.clear()
    arn = _start(stack, machine, name)
    args = [arn, "--endpoint-url", url or stack.url, "--poll", "0.05"]

    def release() -> None:
        if gate.called.wait(PATIENCE):
            gate.open.set()

    opener = threading.Thread(target=release)
    opener.start()
    result = CliRunner().invoke(watch_command, args)
    opener.join(PATIENCE)
    return arn, result


def _entered(stack: LocalStack, arn: str) -> list[str]:
    events = stack.stepfunctions().get_execution_history(executionArn=arn, maxResults=1000)
    return [
        e["stateEnteredEventDetails"]["name"]
        for e in events["events"]
        if e["type"].endswith("StateEntered")
    ]


def test_watch_shows_each_state_once_and_exits_0_on_success(
    stack_and_gate: tuple[LocalStack, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack, gate = stack_and_gate
    monkeypatch.setattr(command, "_history_reader", None)  # the stream, never paging
    arn, result = _watch_while_gated(stack, gate, GATED, "watched")
    assert result.exit_code == 0, result.output
    lines = [
        line.split("▶ ", 1)[1].split(" (")[0] for line in result.output.splitlines() if "▶ " in line
    ]
    assert lines == _entered(stack, arn)
    assert "Both (Parallel)" in result.output and "iteration 2 of Each" in result.output
    assert result.output.rstrip().splitlines()[-1].startswith("SUCCEEDED")


def test_watch_exits_1_when_the_execution_fails(stack_and_gate: tuple[LocalStack, Gate]) -> None:
    stack, gate = stack_and_gate
    _, result = _watch_while_gated(stack, gate, FAILING, "failing")
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.output and "error: Nope" in result.output


def test_watch_pages_the_history_where_there_is_no_live_stream(
    stack_and_gate: tuple[LocalStack, Gate],
) -> None:
    stack, gate = stack_and_gate
    bare = Gateway("127.0.0.1", 0, lambda_handler.handler).start()  # the API, no routes
    try:
        arn, result = _watch_while_gated(stack, gate, GATED, "paged", bare.url)
    finally:
        bare.stop()
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "▶ " in line]
    assert len(lines) == len(_entered(stack, arn))


@pytest.mark.parametrize(
    ("arn", "expected"),
    [
        ("arn:aws:states:us-east-1:000000000000:execution:none:none", "ExecutionDoesNotExist"),
        ("arn:aws:states:us-east-1:000000000000:stateMachine:none", "not an execution ARN"),
        ("arn:aws:states:us-east-1:000000000000:activity:a:b", "InvalidArn"),
        ("not-an-arn", "not an execution ARN"),
    ],
)
def test_watch_refuses_bad_input_with_exit_2(
    stack_and_gate: tuple[LocalStack, Gate], arn: str, expected: str
) -> None:
    stack, _ = stack_and_gate
    result = CliRunner().invoke(watch_command, [arn, "--endpoint-url", stack.url])
    assert result.exit_code == 2, result.output
    assert expected in result.output


def test_watch_refuses_a_non_http_endpoint() -> None:
    arn = "arn:aws:states:us-east-1:000000000000:execution:a:b"
    result = CliRunner().invoke(watch_command, [arn, "--endpoint-url", "file:///etc/passwd"])
    assert result.exit_code == 2 and "http(s) URL" in result.output
