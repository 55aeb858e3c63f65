"""The local stack's moto SQS: a send or a receive does not walk the queue's messages.

GIVEN the local stack on moto (stepflow.local.moto_patches installed by its
start) and a queue holding 60 messages, WHEN a client sends or receives
through boto3, THEN moto does not count the queue's messages for it (it built
every attribute of the queue, three passes over all its messages, to read one
setting, on each send and on each message received: O(queue) per message), and
GetQueueAttributes still counts them right.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from stepflow.local import LocalStack
from stepflow.local.stack import CREDENTIALS, REGION

HELD = 60


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0, handlers={}, pollers=0, runners=0) as running:
        yield running


@pytest.fixture
def queue(stack: LocalStack) -> tuple[Any, str]:
    sqs = boto3.client("sqs", endpoint_url=stack.aws_endpoint, region_name=REGION, **CREDENTIALS)
    name = f"held-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    for start in range(0, HELD, 10):
        entries = [{"Id": str(i), "MessageBody": f"m{i}"} for i in range(start, start + 10)]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    return sqs, url


@pytest.fixture
def visibility_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times moto asks whether a message is visible (once per message walked)."""
    message = importlib.import_module("moto.sqs.models").Message
    visible = message.visible.fget
    calls = [0]

    def counted(self: Any) -> bool:
        calls[0] += 1
        return bool(visible(self))

    monkeypatch.setattr(message, "visible", property(counted))
    return calls


def test_a_send_walks_no_message(queue: tuple[Any, str], visibility_checks: list[int]) -> None:
    sqs, url = queue
    sqs.send_message(QueueUrl=url, MessageBody="one more")
    assert visibility_checks[0] == 0


def test_a_receive_of_ten_walks_the_queue_about_once(
    queue: tuple[Any, str], visibility_checks: list[int]
) -> None:
    sqs, url = queue
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert len(received) == 10
    # One pass to find visible messages (moto's own); without the patch, three more
    # passes per message received (about 60 + 10 x 3 x 60 checks).
    assert visibility_checks[0] <= 2 * HELD


def test_queue_attributes_still_count_the_messages(queue: tuple[Any, str]) -> None:
    sqs, url = queue
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == str(HELD - 10)
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "10"
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "0"
    assert attributes["MessageRetentionPeriod"] == "345600"


DELAYED = 200


def test_a_receive_reads_the_clock_once_per_walk_not_per_message(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs = boto3.client("sqs", endpoint_url=stack.aws_endpoint, region_name=REGION, **CREDENTIALS)
    url = sqs.create_queue(QueueName=f"delayed-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    for start in range(0, DELAYED, 10):  # as the repair messages wait out their minute
        entries = [
            {"Id": str(i), "MessageBody": f"later{i}", "DelaySeconds": 900}
            for i in range(start, start + 10)
        ]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    sqs.send_message(QueueUrl=url, MessageBody="now")
    models = importlib.import_module("moto.sqs.models")
    clock = models.unix_time_millis
    reads = [0]

    def counted() -> float:
        reads[0] += 1
        return float(clock())

    monkeypatch.setattr(models, "unix_time_millis", counted)
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in received] == ["now"]
    # moto's own walk asked the clock twice per message (visible, then delayed): 400+.
    assert reads[0] < 20, reads[0]
    assert sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages") is None
