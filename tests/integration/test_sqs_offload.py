"""Messages over SQS's 256 KiB on moto (S3 + SQS): stored first, sent as a signed reference.

moto takes a message up to 1 MiB; the client here refuses one over 256 KiB as SQS counts it
(:mod:`tests.sqs_limit`), so a bus that sends an oversize body fails as it would on AWS.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")

import boto3  # type: ignore[import-untyped]
import pytest
from stepflow.asl import parse
from stepflow.aws import stepper_lambda as stepper_handler
from stepflow.aws.s3_payloads import S3PayloadStore
from stepflow.aws.sqs_bus import SQSBus, create_queues, decode_message
from stepflow.aws.topology import MESSAGE_PREFIX
from stepflow.engine import RunTask
from stepflow.runtime import InMemoryLog, Message, Stepper
from stepflow.runtime.outcome import TaskOutcome
from stepflow.runtime.payloads import PayloadCorruptError
from stepflow.runtime.signing import MessageSigner
from stepflow.runtime.wire import MessageTooLargeError
from stepflow.testing.handlers import run_handler

from tests.moto_env import offline_aws
from tests.sqs_limit import LIMIT, Refusals, refuse_oversize, sqs_size

SIGNER = MessageSigner.random()
ARN = "arn:aws:states:us-east-1:123456789012:execution:Orders:e1"
BUCKET = "stepflow-test-payloads"
FN = "arn:aws:lambda:us-east-1:123456789012:function:"
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:Orders"
CONTEXT = SimpleNamespace(
    function_name="stepper",
    memory_limit_in_mb=512,
    invoked_function_arn=FN + "stepper",
    aws_request_id="req-1",
)


@dataclass
class Aws:
    sqs: Any
    s3: Any
    url: str
    refused: Refusals
    store: S3PayloadStore

    def receive(self) -> list[dict[str, Any]]:
        every = {"AttributeNames": ["All"], "MessageAttributeNames": ["All"]}
        got = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, **every)
        messages: list[dict[str, Any]] = got.get("Messages", [])
        return messages

    def stored(self) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=MESSAGE_PREFIX)
        return [str(o["Key"]) for o in listed.get("Contents", [])]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    with offline_aws(monkeypatch):
        sqs = boto3.client("sqs", region_name="us-east-1")
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        url, _ = create_queues(sqs, "transitions")
        store = S3PayloadStore(BUCKET, client=s3, prefix=MESSAGE_PREFIX)
        yield Aws(sqs, s3, url, refuse_oversize(sqs), store)


def message(pad: str, n: int = 0) -> Message:
    return Message(ARN, f"{ARN}#3#{n}", "event", {"type": "TimerFired", "pad": pad}, 5.0)


def test_the_size_check_refuses_what_sqs_refuses(aws: Aws) -> None:
    # the test's SQS refuses a body over the limit, counted in UTF-8 bytes
    with pytest.raises(Exception, match="shorter than 262144"):
        aws.sqs.send_message(QueueUrl=aws.url, MessageBody="é" * (LIMIT // 2 + 1))
    assert aws.refused.sizes == [LIMIT + 2]


def test_an_oversize_message_goes_through_the_store_and_arrives_whole(aws: Aws) -> None:
    bus = SQSBus(aws.url, signer=SIGNER, client=aws.sqs, payloads=aws.store)
    sent = message("x" * 300_000)
    bus.send(sent, delay_seconds=0)
    (received,) = aws.receive()
    assert sqs_size({"MessageBody": received["Body"]}) < 1_000
    assert decode_message(received["Body"], SIGNER, aws.store) == sent
    assert (len(aws.refused), bus.offloaded, len(aws.stored())) == (0, 1, 1)
    # the attributes still name the execution and the message (DLQ triage)
    assert received["MessageAttributes"]["message_id"]["StringValue"] == sent.id


def test_a_batch_offloads_only_its_oversize_messages(aws: Aws) -> None:
    bus = SQSBus(aws.url, signer=SIGNER, client=aws.sqs, payloads=aws.store)
    sent = [message("ü" * (140_000 if i in (2, 7) else 10), i) for i in range(12)]
    bus.send_batch([(m, 0) for m in sent])
    received = aws.receive() + aws.receive()
    decoded = sorted((decode_message(r["Body"], SIGNER, aws.store) for r in received), key=str)
    assert decoded == sorted(sent, key=str)
    assert (len(aws.refused), bus.offloaded, len(aws.stored())) == (0, 2, 2)


def test_without_a_store_an_oversize_message_is_refused_before_sqs(aws: Aws) -> None:
    bus = SQSBus(aws.url, signer=SIGNER, client=aws.sqs)
    with pytest.raises(MessageTooLargeError, match="no payload store"):
        bus.send(message("x" * 300_000))
    assert len(aws.refused) == 0 and aws.receive() == []


BIG = "y" * 262_000  # under the 256 KiB data limit as state, over it with an envelope
DEFINITION = {
    "StartAt": "Make",
    "States": {
        "Make": {"Type": "Task", "Resource": FN + "make", "Next": "Use"},
        "Use": {"Type": "Task", "Resource": FN + "use", "End": True},
    },
}
CALLS: Counter[str] = Counter()


def run_task(body: dict[str, Any]) -> TaskOutcome:
    CALLS[body["resource"].rsplit(":", 1)[1]] += 1
    handlers = {"make": lambda data: data, "use": lambda data: len(data["blob"])}
    command = RunTask(body["task_id"], body["resource"], body["input"], body["state_name"])
    return run_handler(handlers, command)


def _event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:transitions",
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def test_a_workflow_passing_256_kb_between_tasks_runs_each_task_once(aws: Aws) -> None:
    # GIVEN an execution whose input is under the data limit, its first task message over SQS's
    log = InMemoryLog()
    bus = SQSBus(aws.url, signer=SIGNER, client=aws.sqs, payloads=aws.store)
    stepper = Stepper(
        log=log,
        bus=bus,
        definitions=lambda _: parse(DEFINITION),
        clock=time.time,
        invoker=run_task,
    )
    stepper_handler.configure(stepper, SIGNER, aws.store)
    CALLS.clear()
    try:
        arn = stepper.start_execution(
            state_machine_arn=SM, name="big", input={"blob": BIG}, seed=7
        ).execution_arn
        # WHEN the handler consumes the queue (a redelivery of each batch included)
        for _ in range(50):
            batch = aws.receive()
            if not batch:
                break
            response = stepper_handler.handler(_event(batch), CONTEXT)
            assert response["batchItemFailures"] == []
            stepper_handler.handler(_event(batch), CONTEXT)  # delivered twice: harmless
            for m in batch:
                aws.sqs.delete_message(QueueUrl=aws.url, ReceiptHandle=m["ReceiptHandle"])
    finally:
        stepper_handler.configure(None)
    # THEN it succeeds, each task ran once, and the oversize messages went through S3
    record = log.get(arn)
    assert record is not None and (record.status, record.state["output"]) == ("SUCCEEDED", len(BIG))
    assert dict(CALLS) == {"make": 1, "use": 1}
    assert (len(aws.refused), bus.offloaded, len(aws.stored())) == (0, 1, 1)


def test_a_reference_whose_body_is_missing_is_retried_not_dropped(aws: Aws) -> None:
    bus = SQSBus(aws.url, signer=SIGNER, client=aws.sqs, payloads=aws.store)
    bus.send(message("x" * 300_000))
    (key,) = aws.stored()
    aws.s3.delete_object(Bucket=BUCKET, Key=key)
    stepper = SimpleNamespace(handle_batch=lambda *a: [])
    failures = stepper_handler.process_records(
        [{"messageId": "m1", "body": aws.receive()[0]["Body"]}], stepper, SIGNER, stored=aws.store
    )
    assert list(failures) == ["m1"] and SIGNER.forged == 0


@pytest.fixture(autouse=True)
def _unflushed_metrics() -> Iterator[None]:
    """``process_records`` called directly adds the handler's metrics: drop them after."""
    yield
    stepper_handler.metrics.clear_metrics()


def test_an_overwritten_stored_body_is_read_bounded_and_retried_not_dropped(aws: Aws) -> None:
    # GIVEN a reference whose object someone with write access replaced by a larger one
    bus = SQSBus(aws.url, signer=SIGNER, client=aws.sqs, payloads=aws.store)
    bus.send(message("x" * 300_000))
    (key,) = aws.stored()
    length = len(aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=b"x" * (4 << 20))
    gets: list[dict[str, Any]] = []
    get_object = aws.s3.get_object

    def spy(**kwargs: Any) -> dict[str, Any]:
        gets.append(kwargs)
        response: dict[str, Any] = get_object(**kwargs)
        return response

    aws.s3.get_object = spy
    handled: list[Message] = []
    stepper = SimpleNamespace(handle_batch=lambda batch, *a: handled.extend(batch) or [])
    forged = SIGNER.forged
    # WHEN the stepper's records are processed
    failures = stepper_handler.process_records(
        [{"messageId": "m1", "body": aws.receive()[0]["Body"]}], stepper, SIGNER, stored=aws.store
    )
    # THEN one ranged GET capped at the signed length, and the record fails (retry, DLQ)
    assert [g.get("Range") for g in gets] == [f"bytes=0-{length}"]
    assert list(failures) == ["m1"] and "over" in str(failures["m1"])
    assert (handled, SIGNER.forged) == ([], forged)


def test_an_intact_stored_body_is_read_whole_through_the_ranged_get(aws: Aws) -> None:
    sent = message("x" * 300_000)
    SQSBus(aws.url, signer=SIGNER, client=aws.sqs, payloads=aws.store).send(sent)
    (key,) = aws.stored()
    length = len(aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    data = aws.store.get_at_most(key.removeprefix(MESSAGE_PREFIX), length)
    assert len(data) == length
    assert decode_message(aws.receive()[0]["Body"], SIGNER, aws.store) == sent


def test_an_emptied_stored_body_is_reported_corrupt_not_as_an_outage(aws: Aws) -> None:
    # GIVEN a reference whose object was replaced by an empty one (S3: 416 InvalidRange)
    SQSBus(aws.url, signer=SIGNER, client=aws.sqs, payloads=aws.store).send(message("x" * 300_000))
    (key,) = aws.stored()
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=b"")
    # THEN the ranged read says the object is corrupt (retried, then the DLQ), not S3 down
    with pytest.raises(PayloadCorruptError):
        aws.store.get_at_most(key.removeprefix(MESSAGE_PREFIX), 1000)
