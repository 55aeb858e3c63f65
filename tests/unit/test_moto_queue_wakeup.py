"""The local stack's moto: a long poll wakes when a delayed message becomes ready.

moto's long poll waited on a condition that only sends notify, a second at a time, so
a timer (a delayed message) that became ready during a wait was received at the end
of the poller's window: up to a second late, depending on its phase (a Retry's 2 s
interval took 2.9 s through ``stepflow local``). With
``stepflow.local.moto_patches`` the wait is cut to when the next hidden message is
ready. What is checked is the wait asked for, not a time measured.
"""

from __future__ import annotations

import importlib
from typing import Any

import boto3
import pytest
from moto import mock_aws
from stepflow.local import moto_patches

from tests.moto_env import offline_aws


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> Any:
    moto_patches.install_cheap_queue_reads()
    with offline_aws(monkeypatch), mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="timers")["QueueUrl"]
        backend = importlib.import_module("moto.sqs.models").sqs_backends
        found = backend["123456789012"]["us-east-1"].queues["timers"]
        yield sqs, url, found


def _waits(queue: Any, monkeypatch: pytest.MonkeyPatch, timeout: float) -> list[float]:
    asked: list[float] = []
    condition = queue._messages_lock

    def wait_for(predicate: Any, timeout: float | None = None) -> bool:
        asked.append(float(timeout or 0))
        return bool(predicate())

    monkeypatch.setattr(condition, "wait_for", wait_for)
    queue.wait_for_messages(timeout)
    return asked


def test_a_wait_ends_when_the_next_delayed_message_is_ready(
    queue: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs, url, found = queue
    sqs.send_message(QueueUrl=url, MessageBody="timer", DelaySeconds=1)
    (asked,) = _waits(found, monkeypatch, 20)
    assert 0.9 < asked <= 1.01  # not the poll's 20 s (nor moto's 1 s step from its start)


def test_without_hidden_messages_the_wait_is_the_polls(
    queue: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs, url, found = queue
    sqs.send_message(QueueUrl=url, MessageBody="now")
    received = sqs.receive_message(QueueUrl=url, VisibilityTimeout=30)["Messages"]
    assert len(received) == 1
    assert _waits(found, monkeypatch, 1)[0] == 1  # in flight for 30 s: the poll's own 1 s
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=received[0]["ReceiptHandle"], VisibilityTimeout=0
    )
    sqs.delete_message(QueueUrl=url, ReceiptHandle=received[0]["ReceiptHandle"])
    assert _waits(found, monkeypatch, 1) == [1]  # an empty queue
