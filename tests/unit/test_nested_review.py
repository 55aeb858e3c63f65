"""A parent stopped while its ``.sync`` task starts the child (second reading of issue 14)."""

from __future__ import annotations

from typing import Any

import pytest
from stepflow.api.nested import ApiExecutionStarter
from stepflow.runtime.nested import NestedStart, StartedExecution
from stepflow.testing import WorkflowEnvironment

R = "arn:aws:states:::states:startExecution"
CHILD_WAITS = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 100, "End": True}}}


@pytest.mark.parametrize("pattern", [".sync", ".sync:2"])
def test_a_child_started_by_a_task_the_stop_overtook_is_stopped(
    pattern: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = WorkflowEnvironment()
    waiting = env.register(CHILD_WAITS, "Waits")
    task = {"Type": "Task", "Resource": R + pattern, "Parameters": {"StateMachineArn": waiting}}
    flow = {"StartAt": "Start", "States": {"Start": {**task, "End": True}}}
    start = ApiExecutionStarter.start

    def start_then_stop(self: Any, request: NestedStart) -> StartedExecution:
        started = start(self, request)
        env.stop(request.parent_arn)  # StopExecution lands before the task's result commits
        return started

    monkeypatch.setattr(ApiExecutionStarter, "start", start_then_stop)
    arn = env.start(env.register(flow), {})
    env.run_until_idle()
    monkeypatch.setattr(ApiExecutionStarter, "start", start)
    assert env.result(arn).status == "ABORTED"
    listed = env.api.call("ListExecutions", {"stateMachineArn": waiting})["executions"]
    (kid,) = listed
    env.run(kid["executionArn"])
    assert env.result(kid["executionArn"]).status == "ABORTED"
