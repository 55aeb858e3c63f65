"""End to end: the local stack (moto server, API Gateway stand-in, SQS pollers) via boto3."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import stepflow
from botocore.exceptions import ClientError
from stepflow.api import sync
from stepflow.local import LocalStack, free_port
from stepflow.local.demo import register

from tests.e2e.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"
FN = "arn:aws:lambda:us-east-1:000000000000:function:"


class Declined(Exception):
    """A task failure the workflow catches."""


def double(payload: Any) -> Any:
    return {"n": payload["n"] * 2}


def decline(payload: Any) -> Any:
    raise Declined(f"card {payload.get('card')} declined")


CALLS: Counter[int] = Counter()
"""Calls of the ``count`` handler by item, across the module's stack."""
CALLS_LOCK = threading.Lock()


def count(payload: Any) -> Any:
    with CALLS_LOCK:
        CALLS[payload["i"]] += 1
    return {"i": payload["i"], "twice": payload["i"] * 2}


HANDLERS = {"double": double, "decline": decline, "count": count}


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0, handlers=HANDLERS) as running:
        yield running


def start(sfn: Any, name: str, definition: dict[str, Any], payload: Any) -> str:
    arn = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)[
        "stateMachineArn"
    ]
    return str(sfn.start_execution(stateMachineArn=arn, input=json.dumps(payload))["executionArn"])


def test_tasks_choice_parallel_map_and_wait_run_to_the_end(stack: LocalStack) -> None:
    sfn = stack.stepfunctions()
    definition = {
        "StartAt": "Double",
        "States": {
            "Double": {
                "Type": "Task",
                "Resource": FN + "double",
                "ResultPath": "$.first",
                "Next": "Big?",
            },
            "Big?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.first.n", "NumericGreaterThan": 5, "Next": "Both"}],
                "Default": "Both",
            },
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}},
                    {
                        "StartAt": "Pause",
                        "States": {"Pause": {"Type": "Wait", "Seconds": 1, "End": True}},
                    },
                ],
                "ResultPath": "$.both",
                "Next": "Each",
            },
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": {
                    "StartAt": "D",
                    "States": {"D": {"Type": "Task", "Resource": FN + "double", "End": True}},
                },
                "ResultPath": "$.doubled",
                "End": True,
            },
        },
    }
    payload = {"n": 4, "items": [{"n": 1}, {"n": 2}, {"n": 3}]}
    execution = start(sfn, "everything", definition, payload)
    described = wait_for(sfn, execution)
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["first"] == {"n": 8} and output["doubled"] == [{"n": 2}, {"n": 4}, {"n": 6}]
    events = sfn.get_execution_history(executionArn=execution)["events"]
    types = [e["type"] for e in events]
    assert types[0] == "ExecutionStarted" and types[-1] == "ExecutionSucceeded"
    assert types.count("LambdaFunctionSucceeded") == 4 and "WaitStateExited" in types
    listed = sfn.list_executions(stateMachineArn=described["stateMachineArn"])["executions"]
    assert [e["executionArn"] for e in listed] == [execution]


def test_a_map_of_300_items_started_through_the_api_succeeds(stack: LocalStack) -> None:
    # GIVEN an inline Map over 300 items (more than the 40 run in the parent's partition,
    # so its iterations run as child executions of the revision the API started)
    sfn = stack.stepfunctions()
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": {
                    "StartAt": "Count",
                    "States": {"Count": {"Type": "Task", "Resource": FN + "count", "End": True}},
                },
                "End": True,
            }
        },
    }
    CALLS.clear()
    items = [{"i": i} for i in range(300)]
    arn = start(sfn, "big-map", definition, {"items": items})
    # WHEN it runs THEN it succeeds with every item's result, in order
    described = wait_for(sfn, arn, timeout=480.0)
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == [{"i": i, "twice": 2 * i} for i in range(300)]
    # AND each item's task ran exactly once
    assert sorted(CALLS) == list(range(300))
    assert set(CALLS.values()) == {1}


def test_a_failing_task_is_caught(stack: LocalStack) -> None:
    sfn = stack.stepfunctions()
    definition = {
        "StartAt": "Charge",
        "States": {
            "Charge": {
                "Type": "Task",
                "Resource": FN + "decline",
                "Catch": [{"ErrorEquals": ["Declined"], "ResultPath": "$.why", "Next": "Sorry"}],
                "End": True,
            },
            "Sorry": {"Type": "Pass", "End": True},
        },
    }
    described = wait_for(sfn, start(sfn, "catching", definition, {"card": "4242"}))
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"])["why"] == {
        "Error": "Declined",
        "Cause": "card 4242 declined",
    }


def test_a_message_that_is_not_stepflows_is_dropped_not_dead_lettered(stack: LocalStack) -> None:
    sqs = stack.client("sqs")
    queue_url = sqs.get_queue_url(QueueName="stepflow-transitions")["QueueUrl"]
    dlq_url = sqs.get_queue_url(QueueName="stepflow-transitions-dlq")["QueueUrl"]
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]

    def depth(url: str) -> int:
        found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        return sum(int(found[name]) for name in names)

    # GIVEN a body that is not a signed StepFlow message WHEN it reaches the stepper
    sqs.send_message(QueueUrl=queue_url, MessageBody="not a stepflow message")
    deadline = time.monotonic() + 30
    while depth(queue_url) and time.monotonic() < deadline:
        time.sleep(0.1)
    # THEN it is acknowledged (dropped and counted), never retried into the DLQ
    assert depth(queue_url) == 0 and depth(dlq_url) == 0


def test_errors_reach_boto3_with_their_aws_codes(stack: LocalStack) -> None:
    sfn = stack.stepfunctions()
    with pytest.raises(ClientError) as missing:
        sfn.describe_execution(
            executionArn="arn:aws:states:us-east-1:000000000000:execution:nope:nope"
        )
    assert missing.value.response["Error"]["Code"] == "ExecutionDoesNotExist"
    with pytest.raises(ClientError) as invalid:
        sfn.create_state_machine(name="bad", definition='{"StartAt": "X"}', roleArn=ROLE)
    assert invalid.value.response["Error"]["Code"] == "InvalidDefinition"


def test_the_examples_register_and_re_register(stack: LocalStack) -> None:
    sfn = stack.stepfunctions()
    first = register(sfn, ROOT / "examples")
    again = register(sfn, ROOT / "examples")
    assert first == again and {"order", "hello", "jsonata"} <= set(first)


def test_the_cli_serves_until_sigterm() -> None:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "stepflow", "local", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        for line in process.stdout:
            if "StepFlow local stack" in line or time.monotonic() > deadline:
                break
        sfn = boto3.client(
            "stepfunctions",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        assert sfn.list_state_machines()["stateMachines"] == []
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_an_activity_task_is_taken_and_completed_through_boto3(stack: LocalStack) -> None:
    sfn = stack.stepfunctions()
    activity = sfn.create_activity(name="approve")["activityArn"]
    definition = {
        "StartAt": "Approve",
        "States": {
            "Approve": {
                "Type": "Task",
                "Resource": activity,
                "HeartbeatSeconds": 60,
                "ResultPath": "$.approval",
                "End": True,
            }
        },
    }
    execution = start(sfn, "approval", definition, {"order": 7})
    task: dict[str, Any] = {}
    deadline = time.monotonic() + 30
    while "taskToken" not in task and time.monotonic() < deadline:
        task = sfn.get_activity_task(activityArn=activity, workerName="e2e")
    assert json.loads(task["input"]) == {"order": 7}
    sfn.send_task_heartbeat(taskToken=task["taskToken"])
    sfn.send_task_success(taskToken=task["taskToken"], output='{"approved": true}')
    described = wait_for(sfn, execution)
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"])["approval"] == {"approved": True}
    with pytest.raises(ClientError) as again:  # a second completion is fenced off
        sfn.send_task_success(taskToken=task["taskToken"], output="{}")
    assert again.value.response["Error"]["Code"] in ("TaskTimedOut", "InvalidToken")


def test_the_worker_sdk_completes_activity_tasks_over_the_api(stack: LocalStack) -> None:
    import threading

    from stepflow.worker import TaskContext, Worker

    sfn = stack.stepfunctions()
    activity = sfn.create_activity(name="pack")["activityArn"]

    def pack(payload: Any, context: TaskContext) -> Any:
        if payload["n"] < 0:
            raise ValueError("negative")
        return {"packed": payload["n"]}

    worker = Worker(sfn, activity, pack, concurrency=2, heartbeat_seconds=1.0, grace_seconds=5)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        definition = {
            "StartAt": "Each",
            "States": {
                "Each": {
                    "Type": "Map",
                    "ItemProcessor": {
                        "StartAt": "Pack",
                        "States": {"Pack": {"Type": "Task", "Resource": activity, "End": True}},
                    },
                    "End": True,
                }
            },
        }
        good = start(sfn, "packing", definition, [{"n": 1}, {"n": 2}, {"n": 3}])
        described = wait_for(sfn, good, timeout=60)
        assert described["status"] == "SUCCEEDED"
        assert json.loads(described["output"]) == [{"packed": 1}, {"packed": 2}, {"packed": 3}]
        arn = described["stateMachineArn"]
        bad = sfn.start_execution(stateMachineArn=arn, input='[{"n": -1}]')["executionArn"]
        failed = wait_for(sfn, bad, timeout=60)
        assert (failed["status"], failed["error"]) == ("FAILED", "ValueError")
    finally:
        worker.stop()
        thread.join(15)
    assert not thread.is_alive()


def test_release_task_through_the_api_hands_the_task_to_the_next_poll(stack: LocalStack) -> None:
    import boto3.session
    from stepflow.worker import ReleasingClient

    sfn = stack.stepfunctions()
    credentials = boto3.session.Session(
        aws_access_key_id="local", aws_secret_access_key="local"
    ).get_credentials()
    releasing = ReleasingClient(sfn, credentials)
    activity = sfn.create_activity(name="handback")["activityArn"]
    definition = {
        "StartAt": "Do",
        "States": {"Do": {"Type": "Task", "Resource": activity, "End": True}},
    }
    execution = start(sfn, "handback", definition, {"order": 8})
    task: dict[str, Any] = {}
    deadline = time.monotonic() + 30
    while "taskToken" not in task and time.monotonic() < deadline:
        task = sfn.get_activity_task(activityArn=activity, workerName="first")
    assert releasing.release_task(taskToken=task["taskToken"]) == {}
    again = sfn.get_activity_task(activityArn=activity, workerName="second")  # at once
    assert json.loads(again["input"]) == {"order": 8}
    assert again["taskToken"] != task["taskToken"]
    with pytest.raises(Exception) as stale:  # the first token no longer works
        releasing.release_task(taskToken=task["taskToken"])
    assert getattr(stale.value, "code", None) == "TaskTimedOut"
    sfn.send_task_success(taskToken=again["taskToken"], output='"done"')
    assert wait_for(sfn, execution)["status"] == "SUCCEEDED"


def test_a_sync_execution_that_loops_forever_fails_at_the_event_cap(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an EXPRESS machine that loops forever and a small cap on a sync run's history
    monkeypatch.setattr(sync, "MAX_EVENTS", 50)
    sfn = stepflow.client(
        stack.url, region="us-east-1", aws_access_key_id="local", aws_secret_access_key="local"
    )
    loop = {
        "StartAt": "Spin",
        "States": {
            "Spin": {"Type": "Pass", "Next": "Again"},
            "Again": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.stop", "IsPresent": True, "Next": "Done"}],
                "Default": "Spin",
            },
            "Done": {"Type": "Succeed"},
        },
    }
    arn = sfn.create_state_machine(
        name="spin", definition=json.dumps(loop), roleArn=ROLE, type="EXPRESS"
    )["stateMachineArn"]
    # WHEN it is run with StartSyncExecution through boto3
    result = sfn.start_sync_execution(stateMachineArn=arn, input="{}")
    # THEN it is answered: failed with States.Runtime naming the cap, not left running or a 500
    assert (result["status"], result.get("error")) == ("FAILED", "States.Runtime"), result
    assert "max_events_per_execution" in result["cause"]
