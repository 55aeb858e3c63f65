"""The deployed entry points read offloaded messages: ``handler`` and ``runner_handler``
called unconfigured, as the Lambda runtime calls them, with everything built from the
environment (moto S3 + SQS).

The stepper's batch is recorded rather than run: what is checked is that the wiring's
message store resolves the reference, so the stepper gets the whole message once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")

import boto3  # type: ignore[import-untyped]
import pytest
from stepflow.aws import stepper_lambda
from stepflow.aws.sqs_bus import create_queues
from stepflow.aws.topology import MESSAGE_PREFIX
from stepflow.runtime import Message, Stepper

from tests.moto_env import offline_aws

ARN = "arn:aws:states:us-east-1:123456789012:execution:Orders:e1"
BUCKET = "stepflow-entry-payloads"
CONTEXT = SimpleNamespace(
    function_name="stepper",
    memory_limit_in_mb=512,
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:stepper",
    aws_request_id="req-1",
    get_remaining_time_in_millis=lambda: 60_000,
)


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, list[Message]]]:
    """The Lambda environment on moto, nothing configured; yields SQS and the handled messages."""
    handled: list[Message] = []

    def record(
        self: Stepper, batch: Sequence[Message], *args: Any, **kwargs: Any
    ) -> list[tuple[Message, Exception]]:
        handled.extend(batch)
        return []

    with offline_aws(monkeypatch):
        sqs, s3 = boto3.client("sqs"), boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        url, _ = create_queues(sqs, "transitions")
        tasks_url, _ = create_queues(sqs, "tasks")
        env = {
            "TABLE_NAME": "stepflow",
            "QUEUE_URL": url,
            "TASKS_QUEUE_URL": tasks_url,
            "PAYLOAD_BUCKET": BUCKET,
            "STEPFLOW_SIGNING_KEY": "k" * 32,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(Stepper, "handle_batch", record)
        stepper_lambda.configure(None)
        stepper_lambda.configure_runner(None)
        try:
            yield sqs, handled
        finally:
            stepper_lambda.configure(None)
            stepper_lambda.configure_runner(None)


def _event(sqs: Any, url: str) -> dict[str, Any]:
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    records = [
        {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"]}
        for m in got
    ]
    for record in records:
        record.update(attributes={}, messageAttributes={}, eventSource="aws:sqs")
    return {"Records": records}


def _offloaded(send: Callable[[Message], None], sqs: Any, url: str) -> tuple[Message, Any]:
    sent = Message(ARN, ARN + "#3#0", "event", {"type": "TimerFired", "pad": "x" * 300_000}, 5.0)
    send(sent)
    event = _event(sqs, url)
    (record,) = event["Records"]
    assert len(record["body"]) < 1_000  # a reference went on the queue
    return sent, event


@pytest.mark.parametrize("entry", ["handler", "runner_handler"])
def test_an_unconfigured_entry_point_reads_an_offloaded_message_once(
    deployed: tuple[Any, list[Message]], entry: str
) -> None:
    sqs, handled = deployed
    # GIVEN the bus the wiring builds from the environment sends a message over SQS's limit
    wiring = stepper_lambda._container()
    bus = wiring.bus if entry == "handler" else wiring.tasks_bus
    assert bus is not None
    sent, event = _offloaded(bus.send, sqs, bus.queue_url)  # type: ignore[attr-defined]
    # WHEN the Lambda runtime calls the entry point (its stepper built on first use)
    response = getattr(stepper_lambda, entry)(event, CONTEXT)
    # THEN the record succeeds and the stepper got the whole message, once
    assert response["batchItemFailures"] == []
    assert handled == [sent]
    s3 = boto3.client("s3")
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=MESSAGE_PREFIX)["KeyCount"] == 1
