"""A redriven execution's live stream on ``stepflow local``: it goes on past the first
``ExecutionFailed`` to the redrive's end (the SSE stream from the start, and ``stepflow watch``).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from click.testing import CliRunner
from stepflow.live.command import watch_command
from stepflow.live.sse_client import follow
from stepflow.local import LocalStack

from tests.e2e.test_live_local import PATIENCE, ROLE
from tests.e2e.waiting import wait_for
from tests.hook_support import HANDLERS, INPUT

FLAKY: dict[str, Any] = {
    "StartAt": "Flaky",
    "States": {
        "Flaky": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:000000000000:function:flaky",
            "End": True,
        }
    },
}


class Flaky:
    """Fails its first call, succeeds after; the second call waits for ``go``."""

    def __init__(self) -> None:
        self.calls = 0
        self.go = threading.Event()

    def __call__(self, value: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("the first call fails")
        self.go.wait(PATIENCE)
        return value


def test_the_stream_and_the_watch_follow_a_redrive_to_its_end() -> None:
    flaky = Flaky()
    with LocalStack(port=0, handlers={**HANDLERS, "flaky": flaky}) as stack:
        sfn = stack.stepfunctions()
        machine = sfn.create_state_machine(name="flaky", definition=json.dumps(FLAKY), roleArn=ROLE)
        arn = sfn.start_execution(
            stateMachineArn=machine["stateMachineArn"], name="flaky", input=json.dumps(INPUT)
        )["executionArn"]
        assert wait_for(sfn, arn)["status"] == "FAILED"
        sfn.redrive_execution(executionArn=arn)  # held in its second call until ``go``
        received: list[dict[str, Any]] = []
        watched: list[Any] = []

        redriven = threading.Event()

        def listen() -> None:
            for event in follow(stack.url, arn, timeout=PATIENCE):
                received.append(event)
                redriven.set() if event["type"] == "ExecutionRedriven" else None
            redriven.set()

        def watch() -> None:
            watched.append(CliRunner().invoke(watch_command, [arn, "--endpoint-url", stack.url]))

        threads = [threading.Thread(target=listen), threading.Thread(target=watch)]
        for thread in threads:
            thread.start()
        redriven.wait(PATIENCE)  # the streams are open while the redrive is held
        flaky.go.set()
        for thread in threads:
            thread.join(PATIENCE)
        assert wait_for(sfn, arn)["status"] == "SUCCEEDED"
        history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        types = [e["type"] for e in received]
        assert "ExecutionFailed" in types and "ExecutionRedriven" in types
        assert [e["id"] for e in received] == [e["id"] for e in history]  # each once
        assert types[-1] == "ExecutionSucceeded"
        assert watched[0].exit_code == 0, watched[0].output
        assert "SUCCEEDED" in watched[0].output
