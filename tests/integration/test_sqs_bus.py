"""The SQS message bus on moto: round trip, delays, failures and dead letters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from stepflow.aws.sqs_bus import (
    MAX_RECEIVE_COUNT,
    BusUnavailableError,
    SQSBus,
    create_queues,
    decode_message,
    encode_message,
)
from stepflow.runtime import Message
from stepflow.runtime.signing import ForgedMessageError, MessageSigner

from tests.moto_env import offline_aws

SIGNER = MessageSigner.random()
ARN = "arn:aws:states:us-east-1:123456789012:execution:Orders:e1"


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with offline_aws(monkeypatch):
        yield boto3.client("sqs", region_name="us-east-1")


def message(**overrides: Any) -> Message:
    fields: dict[str, Any] = {
        "execution_arn": ARN,
        "id": f"{ARN}#3#0",
        "kind": "event",
        "body": {"type": "TimerFired", "timer_id": "t-1"},
        "not_before": 1_700_000_123.5,
    }
    return Message(**{**fields, **overrides})


def receive(sqs: Any, url: str, visibility: int = 30) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=0,
        VisibilityTimeout=visibility,
        MessageAttributeNames=["All"],
        AttributeNames=["All"],
    ).get("Messages", [])
    return messages


def test_a_message_round_trips_with_its_attributes(sqs: Any) -> None:
    # GIVEN a queue and a bus on it
    url, _ = create_queues(sqs, "transitions")
    bus = SQSBus(url, signer=SIGNER, client=sqs)
    sent = message()
    # WHEN a message is sent
    bus.send(sent)
    # THEN it is received whole, with the execution ARN and id as attributes
    (received,) = receive(sqs, url)
    assert decode_message(received["Body"], SIGNER) == sent
    attributes = received["MessageAttributes"]
    assert attributes["execution_arn"]["StringValue"] == ARN
    assert attributes["message_id"]["StringValue"] == sent.id


def test_a_task_message_with_nested_input_round_trips(sqs: Any) -> None:
    url, _ = create_queues(sqs, "transitions")
    task = message(
        kind="task",
        not_before=0.0,
        body={"task_id": "Validate#1", "input": {"lines": [1, {"ü": None}]}, "resource": "x"},
    )
    SQSBus(url, signer=SIGNER, client=sqs).send(task)
    (received,) = receive(sqs, url)
    assert decode_message(received["Body"], SIGNER) == task


def test_a_delayed_message_is_invisible_until_its_delay(sqs: Any) -> None:
    # GIVEN a bus
    url, _ = create_queues(sqs, "transitions")
    bus = SQSBus(url, signer=SIGNER, client=sqs)
    # WHEN a message is sent with a delay (and another beyond SQS's 900 s maximum)
    bus.send(message(id="later"), delay_seconds=120)
    bus.send(message(id="much-later"), delay_seconds=5_000)
    # THEN nothing is deliverable yet: moto honours DelaySeconds; both are counted as delayed
    assert receive(sqs, url) == []
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "2"


def test_the_delay_is_sent_as_delay_seconds_clamped_to_sqs_limits() -> None:
    # GIVEN a bus over a recording client
    calls: list[dict[str, Any]] = []

    class Recorder:
        def send_message(self, **kwargs: Any) -> dict[str, Any]:
            calls.append(kwargs)
            return {"MessageId": "m"}

    bus = SQSBus("https://queue", signer=SIGNER, client=Recorder())
    # WHEN messages are sent with several delays
    for delay in (0, 42, 900, 5_000, -3):
        bus.send(message(), delay_seconds=delay)
    # THEN DelaySeconds is the delay, clamped to 0..900, and the body is the signed message JSON
    assert [c["DelaySeconds"] for c in calls] == [0, 42, 900, 900, 0]
    body = json.loads(calls[0]["MessageBody"])
    assert {k: v for k, v in body.items() if k not in ("key_id", "signature")} == (
        message().to_json()
    )
    assert calls[0]["MessageBody"] == encode_message(message(), SIGNER)


def test_a_failed_send_raises_bus_unavailable(sqs: Any) -> None:
    # GIVEN a bus on a queue that does not exist
    bus = SQSBus(
        "https://sqs.us-east-1.amazonaws.com/123456789012/missing", signer=SIGNER, client=sqs
    )
    # WHEN sending THEN the botocore error is wrapped (and chained)
    with pytest.raises(BusUnavailableError) as raised:
        bus.send(message())
    assert raised.value.__cause__ is not None


def test_a_message_failing_max_receive_count_times_moves_to_the_dlq(sqs: Any) -> None:
    # GIVEN a queue with its DLQ and one message on it
    url, dlq_url = create_queues(sqs, "transitions")
    SQSBus(url, signer=SIGNER, client=sqs).send(message())
    # WHEN it is received and never deleted, maxReceiveCount times
    for attempt in range(1, MAX_RECEIVE_COUNT + 1):
        (received,) = receive(sqs, url, visibility=0)
        assert received["Attributes"]["ApproximateReceiveCount"] == str(attempt)
    # THEN the next receive finds nothing and the message is in the DLQ, intact
    assert receive(sqs, url) == []
    (dead,) = receive(sqs, dlq_url)
    assert decode_message(dead["Body"], SIGNER) == message()


def test_create_queues_sets_the_redrive_policy_and_visibility_timeout(sqs: Any) -> None:
    url, dlq_url = create_queues(sqs, "transitions", function_timeout=30)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": MAX_RECEIVE_COUNT,
    }
    assert attributes["VisibilityTimeout"] == "180"
    assert "FifoQueue" not in attributes or attributes["FifoQueue"] == "false"
    # AND creating them again is idempotent
    assert create_queues(sqs, "transitions", function_timeout=30) == (url, dlq_url)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "malformed"),
        ("[1, 2]", "malformed"),
        ("[" * 100_000, "malformed"),
        ('{"kind": "event"}', "unsigned"),
        ('{"execution_arn": "a", "id": "b", "kind": "nope", "body": {}}', "unsigned"),
        ('{"key_id": "k", "signature": "00", "kind": "event"}', "malformed"),
    ],
)
def test_a_body_that_is_not_a_message_is_rejected_with_the_reason(body: str, reason: str) -> None:
    with pytest.raises(ForgedMessageError, match=reason):
        decode_message(body, SIGNER)


def test_a_batch_of_25_goes_in_three_requests_and_round_trips(sqs: Any) -> None:
    # GIVEN a bus over moto whose SendMessageBatch requests are counted
    url, _ = create_queues(sqs, "transitions")
    requests: list[int] = []
    sqs.meta.events.register(
        "before-parameter-build.sqs.SendMessageBatch",
        lambda params, **_: requests.append(len(params["Entries"])),
    )
    sent = [message(id=f"{ARN}#3#{i}") for i in range(25)]
    # WHEN 25 messages are sent as a batch (one delayed)
    SQSBus(url, signer=SIGNER, client=sqs).send_batch(
        [(m, 60 if i == 24 else 0) for i, m in enumerate(sent)]
    )
    # THEN three requests of at most ten carried them; every one is received whole
    assert requests == [10, 10, 5]
    received: list[Message] = []
    while batch := receive(sqs, url):
        received.extend(decode_message(r["Body"], SIGNER) for r in batch)
    assert sorted(m.id for m in received) == sorted(m.id for m in sent[:24])
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"


def test_a_batch_splits_before_200_kb_of_bodies_and_clamps_delays() -> None:
    calls: list[dict[str, Any]] = []

    class Recorder:
        def send_message_batch(self, **kwargs: Any) -> dict[str, Any]:
            calls.append(kwargs)
            return {"Successful": [], "Failed": []}

    big = [message(id=f"big{i}", body={"type": "X", "pad": "x" * 60_000}) for i in range(5)]
    SQSBus("https://queue", signer=SIGNER, client=Recorder()).send_batch(
        [(m, d) for m, d in zip(big, (0, 42, 900, 5_000, -3), strict=True)]
    )
    assert [len(c["Entries"]) for c in calls] == [3, 2]
    assert [e["DelaySeconds"] for c in calls for e in c["Entries"]] == [0, 42, 900, 900, 0]
    assert all(sum(len(e["MessageBody"]) for e in c["Entries"]) <= 200_000 for c in calls)


def test_a_batch_with_a_refused_entry_raises_bus_unavailable() -> None:
    class Refusing:
        def send_message_batch(self, **kwargs: Any) -> dict[str, Any]:
            return {"Failed": [{"Id": "0", "Code": "InternalError", "SenderFault": False}]}

    bus = SQSBus("https://queue", signer=SIGNER, client=Refusing())
    with pytest.raises(BusUnavailableError, match="refused 1"):
        bus.send_batch([(message(), 0), (message(id="b"), 0)])
