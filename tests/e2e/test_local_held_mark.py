"""End to end through ``stepflow local`` (boto3): the "held until" mark on the path that ships.

The runner that commits a task's result runs the next task in place and marks the head
held until its invocation's deadline (:mod:`stepflow.runtime.held_mark`), read from its
Lambda context: the local pollers give it one counting down from the deployed runner's
timeout (:mod:`stepflow.local.invocation`). Here a Parallel's branch A runs three tasks
in sequence (the second and third in place) while branch B's Wait timer commits on the
held head: the timer's commit must not send A's held task to the tasks queue again.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.local import LocalStack
from stepflow.runtime.task_groups import group_members

from tests.e2e.counting import FN, ROLE, count_task_sends
from tests.e2e.waiting import wait_for

CALLS: Counter[str] = Counter()
LOCK = threading.Lock()
TIMER_BEFORE_A2: list[bool] = []
"""Per call of ``a2``: whether branch B's Wait had already ended when it started."""
SFN: list[Any] = []
"""The module stack's Step Functions client (the handler reads the history with it)."""


def _waited(execution: str) -> bool:
    events = SFN[0].get_execution_history(executionArn=execution, maxResults=1000)["events"]
    return any(e["type"] == "WaitStateExited" for e in events)


def step(payload: Any) -> Any:
    """Count the call; ``a2`` returns only once branch B's timer has been committed."""
    name, execution = str(payload["step"]), str(payload["execution"])
    with LOCK:
        CALLS[name] += 1
    if name == "a2":  # running in place, its outbox held: B's timer commits meanwhile
        TIMER_BEFORE_A2.append(_waited(execution))
        deadline = time.monotonic() + 60.0
        while not _waited(execution):
            if time.monotonic() > deadline:
                raise TimeoutError("branch B's Wait never ended")
            time.sleep(0.05)
    return {"step": name}


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0, handlers={"step": step}) as running:
        SFN[:] = [running.stepfunctions()]
        yield running


def _task(name: str, following: str | None) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": FN + "step",
        "Parameters": {"step": name, "execution.$": "$$.Execution.Id"},
    }
    return {**state, "Next": following} if following else {**state, "End": True}


DEFINITION = {
    "StartAt": "Both",
    "States": {
        "Both": {
            "Type": "Parallel",
            "Branches": [
                {
                    "StartAt": "A1",
                    "States": {
                        "A1": _task("a1", "A2"),
                        "A2": _task("a2", "A3"),
                        "A3": _task("a3", None),
                    },
                },
                {"StartAt": "B", "States": {"B": {"Type": "Wait", "Seconds": 6, "End": True}}},
            ],
            "End": True,
        }
    },
}


def test_a_timer_committed_on_a_held_head_sends_nothing_held_and_each_task_runs_once(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a Parallel: branch A runs a1, a2, a3 in sequence (a2 lasts until branch B's
    # 6 s Wait has been committed; 6 s leaves a loaded machine time to reach a2 before
    # it), branch B only waits
    sfn = stack.stepfunctions()
    machine = sfn.create_state_machine(
        name="HeldMark", definition=json.dumps(DEFINITION), roleArn=ROLE
    )["stateMachineArn"]
    sent = count_task_sends(stack, monkeypatch)
    CALLS.clear()
    TIMER_BEFORE_A2.clear()
    # WHEN it runs through stepflow local's pollers
    execution = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    described = wait_for(sfn, execution, timeout=120)
    # THEN it succeeds, each task handler called once
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == [{"step": "a3"}, {}]
    assert dict(CALLS) == {"a1": 1, "a2": 1, "a3": 1}
    # AND the timer was committed while a2 ran in place (its outbox held): the case tested
    assert TIMER_BEFORE_A2 == [False]
    # AND ONE message went to the tasks queue, a1's: the runner ran a2 and a3 in place,
    # and the timer's commit on the head it held sent a2 no second time (its mark, read
    # from the runner's Lambda context; a context without a deadline writes none, and
    # the timer's commit sends a2's message again)
    mine = [m for m in sent if m.execution_arn == execution]
    bodies = [x.body for m in mine for x in (group_members(m) or [m])]  # a1: a group of one
    assert len(mine) == 1 and [b.get("state_name") for b in bodies] == ["A1"], bodies
