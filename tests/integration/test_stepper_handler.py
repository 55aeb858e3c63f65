"""The stepper Lambda handler on SQS batches: partial failures, forged records, a full run.

The handler runs for real (Powertools batch, Logger, Metrics, Tracer with
tracing disabled) over an injected Stepper: an in-memory log and the SQS bus
on moto. One virtual clock drives both the Stepper and moto's SQS (its
``DelaySeconds`` and visibility timeouts), so waits take no real time.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")

import boto3  # type: ignore[import-untyped]
import moto.sqs.models
import pytest
from moto import mock_aws
from pydantic import ValidationError
from stepflow.asl import parse
from stepflow.aws import stepper_lambda as stepper_handler
from stepflow.aws.sqs_bus import SQSBus, create_queues
from stepflow.engine import RunTask
from stepflow.runtime import InMemoryLog, Message, Stepper, leases
from stepflow.runtime.outcome import TaskOutcome
from stepflow.runtime.signing import MessageSigner
from stepflow.testing import execute
from stepflow.testing.handlers import run_handler

FN = "arn:aws:lambda:us-east-1:123456789012:function:"
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:Orders"
ENV = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
SIGNER = MessageSigner.random()
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:transitions"
DEFINITION = {
    "StartAt": "Validate",
    "States": {
        "Validate": {"Type": "Task", "Resource": FN + "validate", "Next": "Wait"},
        "Wait": {"Type": "Wait", "Seconds": 1200, "Next": "Total"},
        "Total": {"Type": "Task", "Resource": FN + "total", "End": True},
    },
}
MACHINE = parse(DEFINITION)
HANDLERS = {
    "validate": lambda order: {**order, "valid": True},
    "total": lambda order: {**order, "total": sum(order["lines"])},
}


@dataclass
class Clock:
    """A virtual clock (epoch seconds) shared by the Stepper and moto's SQS."""

    now: float

    def __call__(self) -> float:
        return self.now


CONTEXT = SimpleNamespace(
    function_name="stepper",
    memory_limit_in_mb=512,
    invoked_function_arn=FN + "stepper",
    aws_request_id="req-1",
)


def run_task(body: dict[str, Any]) -> TaskOutcome:
    command = RunTask(body["task_id"], body["resource"], body["input"], body["state_name"])
    return run_handler(HANDLERS, command)


@dataclass
class Stack:
    sqs: Any
    url: str
    clock: Clock
    log: InMemoryLog
    stepper: Stepper

    def start(self, name: str, order: Any) -> str:
        record = self.stepper.start_execution(state_machine_arn=SM, name=name, input=order, seed=7)
        return record.execution_arn

    def receive(self) -> list[dict[str, Any]]:
        every = {"AttributeNames": ["All"], "MessageAttributeNames": ["All"]}
        response = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, **every)
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def run(self, messages: list[dict[str, Any]]) -> list[str]:
        """Invoke the handler on a batch, delete what succeeded (as the event source
        mapping does) and return the failed message ids."""
        response = stepper_handler.handler(lambda_event(messages), CONTEXT)
        failed = [item["itemIdentifier"] for item in response["batchItemFailures"]]
        for m in messages:
            if m["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
        return failed


def lambda_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The event Lambda delivers for SQS messages received with all attributes."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {
                    k: {"stringValue": v.get("StringValue"), "dataType": v["DataType"]}
                    for k, v in m.get("MessageAttributes", {}).items()
                },
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": QUEUE_ARN,
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    aws_env(monkeypatch)
    clock = Clock(float(int(time.time())))
    # moto's SQS reads the time through these two functions; give it the virtual clock
    monkeypatch.setattr(moto.sqs.models, "unix_time", lambda dt=None: clock.now)
    monkeypatch.setattr(moto.sqs.models, "unix_time_millis", lambda dt=None: clock.now * 1000)
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url, _ = create_queues(sqs, "transitions")
        log, bus = InMemoryLog(), SQSBus(url, signer=SIGNER, client=sqs)
        stepper = Stepper(
            log=log, bus=bus, definitions=lambda _: MACHINE, clock=clock, invoker=run_task
        )
        stepper_handler.configure(stepper, SIGNER)
        try:
            yield Stack(sqs, url, clock, log, stepper)
        finally:
            stepper_handler.configure(None)


def committed(log: InMemoryLog, arn: str) -> list[str]:
    """The types of an execution's committed history events."""
    return [str(e["type"]) for e in log.history(arn).events]


def emf_metrics(output: str) -> dict[str, Any]:
    """The metric values in the EMF lines printed by Powertools Metrics."""
    values: dict[str, Any] = {}
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blob = json.loads(line)
            for definition in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                values[definition["Name"]] = blob[definition["Name"]]
    return values


def test_a_batch_that_succeeds_reports_no_failures_and_real_metrics(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN three executions, each with its first task message on the queue
    arns = [stack.start(f"e{i}", {"lines": [i]}) for i in range(3)]
    batch = stack.receive()
    assert len(batch) == 3
    capsys.readouterr()
    # (what an earlier test in this process left unflushed would be flushed with this batch)
    stepper_handler.metrics.clear_metrics()
    # WHEN the handler processes the batch
    failed = stack.run(batch)
    # THEN nothing failed, every task ran and its result is committed by this invocation
    # (issue 18: the runner commits the results it ran; no result message is queued)
    assert failed == []
    assert all(committed(stack.log, arn).count("LambdaFunctionSucceeded") == 1 for arn in arns)
    assert stack.receive() == []  # each execution now waits on its delayed timer
    # AND the metrics count the batch's messages and carry the measured batch duration
    values = emf_metrics(capsys.readouterr().out)
    assert values["MessagesProcessed"] == [3.0]
    (latency,) = values["DecisionLatency"]
    assert latency > 0


def test_a_record_that_is_not_a_signed_message_is_dropped_alone_and_logged_with_the_reason(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a batch of two good messages around a body that is not a (signed) message
    arns = [stack.start("e1", {"lines": [1]})]
    stack.sqs.send_message(QueueUrl=stack.url, MessageBody='{"hello": "world"}')
    arns.append(stack.start("e2", {"lines": [2]}))
    batch = stack.receive()
    poison = next(m["MessageId"] for m in batch if "hello" in m["Body"])
    logs = io.StringIO()
    stack_handler = stepper_handler.logger.registered_handler
    previous = stack_handler.setStream(logs)  # type: ignore[attr-defined]
    capsys.readouterr()
    try:
        # WHEN the handler processes it
        failed = stack.run(batch)
    finally:
        stack_handler.setStream(previous)  # type: ignore[attr-defined]
    # THEN nothing is reported failed (the forged record is acknowledged, never retried)
    assert failed == []
    assert [committed(stack.log, arn).count("LambdaFunctionSucceeded") for arn in arns] == [1, 1]
    assert stack.receive() == []
    # AND the log says why, keyed by the SQS message id only; the metric counts it
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    (entry,) = [e for e in lines if e["message"] == "forged message dropped"]
    assert entry["message_id"] == poison and entry["reason"] == "unsigned"
    assert entry["level"] == "WARNING" and "hello" not in json.dumps(entry)
    assert emf_metrics(capsys.readouterr().out)["ForgedMessages"] == [1.0]


def test_a_record_whose_handling_raises_is_reported_failed(stack: Stack) -> None:
    # GIVEN a task message whose attempt is leased to another live worker
    arn = stack.start("e1", {"lines": [1]})
    (task,) = stack.receive()
    task_id = json.loads(task["Body"])["body"]["task_id"]
    assert leases.claim(stack.log, arn, task_id, "rival", stack.clock.now, 600).status == "acquired"
    # WHEN the handler processes it THEN the stepper's TaskLeaseHeldError fails the record
    assert stack.run([task]) == [task["MessageId"]]
    # AND after the lease expires the redelivered message succeeds
    stack.clock.now += 601
    (again,) = stack.receive()
    assert again["MessageId"] == task["MessageId"]
    assert stack.run([again]) == []


def test_a_workflow_runs_to_the_end_through_the_queue_like_in_memory(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an execution of Task -> Wait 1200 s (longer than SQS's 900 s delay) -> Task
    order = {"lines": [1, 2, 3]}
    delays: list[int] = []
    send = stack.stepper.bus.send

    def recording_send(message: Message, delay_seconds: int = 0) -> None:
        delays.append(delay_seconds)
        send(message, delay_seconds)

    monkeypatch.setattr(stack.stepper.bus, "send", recording_send)
    arn = stack.start("e1", order)
    reference = execute(DEFINITION, order, handlers=HANDLERS, name="e1", seed=7)
    # WHEN the handler consumes the queue batch by batch, the clock moving only when idle
    for _ in range(500):
        batch = stack.receive()
        if batch:
            assert stack.run(batch) == []
        elif (record := stack.log.get(arn)) is not None and record.status == "RUNNING":
            stack.clock.now += 60
        else:
            break
    else:
        raise AssertionError("the execution did not finish")
    # THEN it ends as the in-memory engine does, with the same history
    assert (final := stack.log.get(arn)) is not None
    assert (final.status, final.state["output"]) == ("SUCCEEDED", reference.result)
    assert reference.result == {"lines": [1, 2, 3], "valid": True, "total": 6}
    history = stack.log.history(arn).events
    assert [e["type"] for e in history] == [e["type"] for e in reference.history]
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    # AND the wait went through SQS delays: a maximal 900 s one, then the re-armed rest
    assert 900 in delays and any(0 < d < 900 for d in delays)


def test_the_lambda_stepper_is_built_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    aws_env(monkeypatch)
    # GIVEN the Lambda environment WHEN the stepper is built THEN it uses those resources
    stepper = stepper_handler.build_stepper(
        None, {"TABLE_NAME": "t", "QUEUE_URL": "https://q", "STEPFLOW_SIGNING_KEY": "k" * 32}
    )
    assert stepper.log.table == "t"  # type: ignore[attr-defined]
    assert stepper.bus.queue_url == "https://q"  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match="TABLE_NAME"):
        stepper_handler.build_stepper(lambda _: MACHINE, {})
    with mock_aws():
        # GIVEN a table holding a state machine's definition as JSON text
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        keys = [("pk", "HASH"), ("sk", "RANGE")]
        ddb.create_table(
            TableName="stepflow",
            KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in keys],
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k, _ in keys],
            BillingMode="PAY_PER_REQUEST",
        )
        item = {"pk": {"S": f"SM#{SM}"}, "sk": {"S": "DEFINITION"}}
        ddb.put_item(
            TableName="stepflow", Item={**item, "definition": {"S": json.dumps(DEFINITION)}}
        )
        definitions = stepper_handler.table_definitions(ddb, "stepflow")
        # WHEN it is looked up THEN it is parsed, and cached for the container
        machine = definitions(SM)
        assert machine.root.start_at == "Validate"
        ddb.delete_item(TableName="stepflow", Key=item)
        assert definitions(SM) is machine
        # AND an unknown state machine is a LookupError (the record is retried)
        with pytest.raises(LookupError):
            definitions(SM + "-other")
