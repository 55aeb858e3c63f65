"""End to end through ``stepflow local`` (boto3): a Task's retry fires on the runner.

The runner's commit of a failed attempt sends the retry's timer to the tasks queue, with
the retry's delay; the runner that receives it fires it and runs the new attempt in place
(:func:`stepflow.runtime.repair.rides_tasks`). Counted: each handler's calls, and every
message of the execution sent to each of the two queues.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.local import LocalStack
from stepflow.runtime.task_groups import group_members

from tests.e2e.counting import FN, ROLE, count_sends, count_task_sends
from tests.e2e.waiting import wait_for

CALLS: Counter[tuple[str, str]] = Counter()
LOCK = threading.Lock()


class Flaky(Exception):
    """The first attempt's error."""


def flaky(payload: Any) -> Any:
    """Fail the first call of each execution; succeed after."""
    key = ("flaky", str(payload["execution"]))
    with LOCK:
        CALLS[key] += 1
        first = CALLS[key] == 1
    if first:
        raise Flaky("the first attempt fails")
    return {"attempt": 2}


def plain(payload: Any) -> Any:
    """Count the call."""
    with LOCK:
        CALLS[("plain", str(payload["execution"]))] += 1
    return {"done": True}


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0, handlers={"flaky": flaky, "plain": plain}) as running:
        yield running


def _task(name: str) -> dict[str, Any]:
    return {"Type": "Task", "Resource": FN + name, "Parameters": {"execution.$": "$$.Execution.Id"}}


DEFINITION = {
    "StartAt": "A",
    "States": {
        "A": {
            **_task("flaky"),
            "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 1, "MaxAttempts": 2}],
            "Next": "B",
        },
        "B": {**_task("plain"), "End": True},
    },
}


def test_a_retry_fires_on_the_runner_and_its_attempt_runs_in_place_once(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN A, whose first attempt fails and is retried after 1 s, then B
    sfn = stack.stepfunctions()
    machine = sfn.create_state_machine(
        name="RetryOnRunner", definition=json.dumps(DEFINITION), roleArn=ROLE
    )["stateMachineArn"]
    tasks = count_task_sends(stack, monkeypatch)
    transitions = count_sends(stack.wiring.bus, monkeypatch)
    # WHEN it runs through stepflow local's pollers
    execution = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    described = wait_for(sfn, execution, timeout=60)
    # THEN it succeeds, A called twice and B once
    assert described["status"] == "SUCCEEDED", described
    with LOCK:
        assert (CALLS[("flaky", execution)], CALLS[("plain", execution)]) == (2, 1)
    # AND the tasks queue got A's first attempt and the retry's timer, nothing else: the
    # runner that fired the timer ran A's second attempt and B in place
    mine = [m for m in tasks if m.execution_arn == execution]
    kinds = [
        (m.kind, m.body.get("type") or [x.body["resource"] for x in group_members(m) or [m]])
        for m in mine
    ]
    assert kinds == [("task", [FN + "flaky"]), ("event", "TimerFired")], kinds
    # AND nothing went to the transition queue: no timer, no repair message (round 11)
    ours = [m for m in transitions if m.execution_arn == execution]
    assert ours == [], [m.body for m in ours]
    # AND the history shows the retry after its interval
    events = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    kinds_seen = [e["type"] for e in events if e["type"].startswith("Lambda")]
    assert kinds_seen == [
        "LambdaFunctionScheduled",
        "LambdaFunctionStarted",
        "LambdaFunctionFailed",
        "LambdaFunctionScheduled",
        "LambdaFunctionStarted",
        "LambdaFunctionSucceeded",
        "LambdaFunctionScheduled",
        "LambdaFunctionStarted",
        "LambdaFunctionSucceeded",
    ], kinds_seen
    failed = next(e for e in events if e["type"] == "LambdaFunctionFailed")
    again = [e for e in events if e["type"] == "LambdaFunctionScheduled"][1]
    assert (again["timestamp"] - failed["timestamp"]).total_seconds() >= 1.0
