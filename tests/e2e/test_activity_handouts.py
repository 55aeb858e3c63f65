"""Exactly-once hand-outs: many pollers on one activity through boto3 against the local stack.

GIVEN executions each waiting on one activity task, WHEN several pollers call
GetActivityTask at the same time (moto's SQS may hand one message to two of
them), THEN every task is handed out exactly once and its handler runs once.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from stepflow.local import LocalStack
from stepflow.worker import TaskContext, Worker

from tests.e2e.test_local_stack import ROLE
from tests.e2e.waiting import wait_for


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0, handlers={}) as running:
        yield running


def activity_machine(sfn: Any, name: str) -> tuple[str, str]:
    """An activity and a state machine of one Task on it; their ARNs."""
    activity = sfn.create_activity(name=name)["activityArn"]
    definition = {
        "StartAt": "Work",
        "States": {"Work": {"Type": "Task", "Resource": activity, "End": True}},
    }
    machine = sfn.create_state_machine(
        name=f"{name}-machine", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]
    return activity, machine


def start_all(sfn: Any, machine: str, inputs: list[dict[str, Any]]) -> list[str]:
    return [
        sfn.start_execution(stateMachineArn=machine, input=json.dumps(payload))["executionArn"]
        for payload in inputs
    ]


def race_pollers(stack: LocalStack, name: str, tasks: int, pollers: int) -> None:
    """``tasks`` executions, ``pollers`` threads polling with boto3 until every task is done."""
    sfn = stack.stepfunctions()
    activity, machine = activity_machine(sfn, name)
    arns = start_all(sfn, machine, [{"i": i} for i in range(tasks)])
    handed: list[str] = []
    runs: Counter[int] = Counter()
    refused: list[str] = []
    lock = threading.Lock()

    def poll(n: int) -> None:
        client = stack.stepfunctions()
        while True:
            task = client.get_activity_task(activityArn=activity, workerName=f"p{n}")
            if "taskToken" not in task:
                continue
            payload = json.loads(task["input"])
            if payload.get("stop"):  # a sentinel: every real task is done, leave
                client.send_task_success(taskToken=task["taskToken"], output="{}")
                return
            with lock:
                handed.append(task["taskToken"])
                runs[payload["i"]] += 1  # the "handler"
            try:
                client.send_task_success(taskToken=task["taskToken"], output=json.dumps(payload))
            except ClientError as exc:
                with lock:
                    refused.append(exc.response["Error"]["Code"])

    threads = [threading.Thread(target=poll, args=(n,), daemon=True) for n in range(pollers)]
    for thread in threads:
        thread.start()
    statuses = [wait_for(sfn, arn, timeout=120)["status"] for arn in arns]
    # One sentinel per poller releases each from its long poll (each goes to one poller).
    sentinels = start_all(sfn, machine, [{"stop": True}] * pollers)
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert (len(handed), len(set(handed))) == (tasks, tasks)  # one hand-out per task ...
    assert runs == Counter(range(tasks))  # ... so each handler ran once
    assert refused == []
    assert statuses == ["SUCCEEDED"] * tasks
    assert [wait_for(sfn, arn)["status"] for arn in sentinels] == ["SUCCEEDED"] * pollers


def test_twenty_tasks_and_eight_concurrent_pollers_give_twenty_hand_outs(
    stack: LocalStack,
) -> None:
    race_pollers(stack, "race-20-8", tasks=20, pollers=8)


def test_three_tasks_and_four_concurrent_pollers_give_three_hand_outs(stack: LocalStack) -> None:
    race_pollers(stack, "race-3-4", tasks=3, pollers=4)


def test_the_worker_sdk_at_concurrency_eight_runs_each_handler_once(stack: LocalStack) -> None:
    sfn = stack.stepfunctions()
    activity, machine = activity_machine(sfn, "sdk-20-8")
    runs: Counter[int] = Counter()
    lock = threading.Lock()

    def handler(payload: Any, context: TaskContext) -> Any:
        with lock:
            runs[payload["i"]] += 1
        time.sleep(0.01)
        return {"done": payload["i"]}

    worker = Worker(sfn, activity, handler, concurrency=8, heartbeat_seconds=5.0, grace_seconds=5)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        arns = start_all(sfn, machine, [{"i": i} for i in range(20)])
        described = [wait_for(sfn, arn, timeout=120) for arn in arns]
    finally:
        worker.stop()
        thread.join(40)
    assert [d["status"] for d in described] == ["SUCCEEDED"] * 20
    assert [json.loads(d["output"]) for d in described] == [{"done": i} for i in range(20)]
    assert runs == Counter(range(20))
    assert worker.counts["succeeded"] == 20
