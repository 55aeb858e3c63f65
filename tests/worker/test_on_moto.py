"""Activities end to end on moto: the DynamoDB log, SQS task queues and the worker SDK.

The log and the queues are real (moto) AWS APIs; the transition bus stays in
memory on a virtual clock so timeouts fire without waiting.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from stepflow.activities import ActivityError, ActivityRouter, ActivityService
from stepflow.asl import parse
from stepflow.aws.dynamodb_log import DynamoDBLog, create_table
from stepflow.aws.sqs_task_queue import SQSTaskQueue
from stepflow.runtime import InMemoryBus, Stepper
from stepflow.runtime.outcome import TaskOutcome
from stepflow.worker import ServiceClient, TaskContext, Worker

from tests.worker.harness import SM, activity, task_machine


class Stack:
    def __init__(self, sqs: Any, definition: dict[str, Any]) -> None:
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(ddb, "log")
        self.bus = InMemoryBus(now=1_000_000.0)
        self.log = DynamoDBLog("log", client=ddb)
        self.queue = SQSTaskQueue(client=sqs, prefix="moto-tq-")
        machine = parse(definition)
        self.stepper = Stepper(
            log=self.log,
            bus=self.bus,
            definitions=lambda _arn: machine,
            clock=lambda: self.bus.now,
            invoker=lambda body: TaskOutcome.failed("Unexpected", "no inline tasks here"),
            router=ActivityRouter(self.queue, self.bus, signer=self.bus.signer),
        )
        self.service = ActivityService(
            stepper=self.stepper,
            queue=self.queue,
            signer=self.bus.signer,
            clock=lambda: self.bus.now,
        )
        self.service.create_activity({"name": "jobs"})

    def start(self, name: str, input: Any) -> str:
        record = self.stepper.start_execution(state_machine_arn=SM, name=name, input=input, seed=1)
        return record.execution_arn

    def advance(self, seconds: float) -> None:
        until = self.bus.now + seconds
        while len(self.bus) and self.bus._queue[0][0] <= until:
            batch = self.bus.receive_batch(10)
            self.stepper.handle_batch(batch)
            for message in batch:
                self.bus.ack(message)
        self.bus.now = max(self.bus.now, until)

    def types(self, arn: str) -> list[str]:
        return [e["type"] for e in self.log.history(arn).events]

    def status(self, arn: str) -> str:
        record = self.log.get(arn)
        assert record is not None
        return record.status


@pytest.fixture
def stack(sqs: Any) -> Iterator[Stack]:
    yield Stack(sqs, task_machine(activity("jobs"), HeartbeatSeconds=30))


def test_a_worker_completes_activity_tasks_through_dynamodb_and_sqs(stack: Stack) -> None:
    arns = [stack.start(f"e{i}", {"n": i}) for i in range(3)]

    def handler(task: Any, context: TaskContext) -> Any:
        return {"n": task["n"], "squared": task["n"] ** 2}

    client = ServiceClient(stack.service, wait_seconds=0)
    worker = Worker(client, activity("jobs"), handler, concurrency=1, heartbeat_seconds=60)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    done = threading.Event()
    for _ in range(1000):
        if worker.counts["succeeded"] == 3:
            break
        done.wait(0.01)
    worker.stop()
    thread.join(10)
    assert [stack.status(arn) for arn in arns] == ["SUCCEEDED"] * 3
    for i, arn in enumerate(arns):
        record = stack.log.get(arn)
        assert record is not None
        assert record.attributes == {}  # the lease went with the attempt
        assert stack.types(arn).count("ActivitySucceeded") == 1
        assert stack.stepper._load_state(record).output == {"n": i, "squared": i * i}


def test_heartbeats_are_recorded_and_a_silent_worker_times_out(stack: Stack) -> None:
    arn = stack.start("e1", {})
    task = stack.service.get_activity_task(
        {"activityArn": activity("jobs"), "workerName": "w", "waitSeconds": 0}
    )
    record = stack.log.get(arn)
    lease = stack.log.lease(arn, "t1")  # the delivery's lease record, in DynamoDB
    assert record is not None and lease is not None
    assert (lease.delivery, lease.owner) == (1, "w")
    stack.advance(20)
    stack.service.send_task_heartbeat({"taskToken": task["taskToken"]})
    beat = stack.log.get(arn)
    assert beat is not None and beat.seq == record.seq + 1  # recorded in the log
    extended = stack.log.lease(arn, "t1")  # and the lease record extended with it
    assert extended is not None and extended.until > lease.until
    stack.advance(29)
    assert stack.status(arn) == "RUNNING"  # the heartbeat moved the deadline
    stack.advance(1)
    assert "ActivityTimedOut" in stack.types(arn)
    history = stack.types(arn)
    with pytest.raises(ActivityError) as late:
        stack.service.send_task_success({"taskToken": task["taskToken"], "output": "{}"})
    assert late.value.code == "TaskTimedOut"
    assert stack.types(arn) == history


def test_a_released_task_is_redelivered_with_a_new_token_on_sqs(stack: Stack) -> None:
    arn = stack.start("e1", {"x": 1})
    poll = {"activityArn": activity("jobs"), "workerName": "w", "waitSeconds": 0}
    first = stack.service.get_activity_task(poll)
    assert stack.service.get_activity_task(poll) == {}  # leased (SQS visibility)
    stack.service.release_task({"taskToken": first["taskToken"]})  # visibility 0
    second = stack.service.get_activity_task(poll)
    assert json.loads(second["input"]) == {"x": 1}
    with pytest.raises(ActivityError):
        stack.service.send_task_success({"taskToken": first["taskToken"], "output": "1"})
    stack.service.send_task_success({"taskToken": second["taskToken"], "output": "2"})
    assert stack.status(arn) == "SUCCEEDED"
    assert stack.service.get_activity_task(poll) == {}  # deleted from SQS
