"""One contract for the task-queue port, run on the in-memory twin and on SQS (moto)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from stepflow.aws.sqs_task_queue import SQSTaskQueue
from stepflow.runtime.task_queue import InMemoryTaskQueue, QueueDoesNotExistError, TaskQueue


class Clock:
    now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sqs"])
def queue(request: pytest.FixtureRequest) -> TaskQueue:
    if request.param == "memory":
        return InMemoryTaskQueue(clock=Clock())
    sqs = request.getfixturevalue("sqs")
    return SQSTaskQueue(client=sqs, prefix="test-tq-")


def test_create_tags_names_delete(queue: TaskQueue) -> None:
    assert queue.tags("jobs") is None
    queue.create("jobs", {"stepflow:activity": "jobs"})
    queue.create("jobs", {"stepflow:activity": "jobs"})  # idempotent
    queue.create("other", {"stepflow:activity": "other"})
    assert queue.tags("jobs") == {"stepflow:activity": "jobs"}
    assert queue.names() == ["jobs", "other"]
    queue.delete("jobs")
    queue.delete("jobs")
    assert queue.tags("jobs") is None
    assert queue.names() == ["other"]


def test_a_missing_queue_is_reported(queue: TaskQueue) -> None:
    with pytest.raises(QueueDoesNotExistError):
        queue.send("nope", {"a": 1})
    with pytest.raises(QueueDoesNotExistError):
        queue.receive("nope", lease_seconds=5)


def test_a_leased_message_is_hidden_until_released_and_gone_once_acked(
    queue: TaskQueue,
) -> None:
    queue.create("jobs", {})
    queue.send("jobs", {"task": 1})
    lease = queue.receive("jobs", lease_seconds=300)
    assert lease is not None
    assert (lease.body, lease.receive_count) == ({"task": 1}, 1)
    assert queue.receive("jobs", lease_seconds=300) is None  # leased: invisible
    queue.extend("jobs", lease.receipt, 0)  # released
    again = queue.receive("jobs", lease_seconds=300)
    assert again is not None
    assert again.body == {"task": 1}
    assert again.receive_count == 2
    assert again.receipt != lease.receipt
    queue.ack("jobs", again.receipt)
    queue.extend("jobs", again.receipt, 0)  # a stale receipt changes nothing
    assert queue.receive("jobs", lease_seconds=0) is None


def test_an_expired_lease_redelivers_and_an_extended_one_does_not() -> None:
    # Lease expiry needs a clock: the in-memory twin's is virtual.
    clock = Clock()
    queue = InMemoryTaskQueue(clock=clock)
    queue.create("jobs", {})
    queue.send("jobs", {"task": 1})
    lease = queue.receive("jobs", lease_seconds=30)
    assert lease is not None
    clock.now += 20
    queue.extend("jobs", lease.receipt, 30)
    clock.now += 20
    assert queue.receive("jobs", lease_seconds=30) is None
    clock.now += 10
    again = queue.receive("jobs", lease_seconds=30)
    assert again is not None and again.receive_count == 2


def _attributes(sqs: Any, name: str) -> dict[str, Any]:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    found: dict[str, Any] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
        "Attributes"
    ]
    return found


def _denies_plain_http(policy: str, queue_arn: str) -> bool:
    statements = json.loads(policy)["Statement"]
    return statements == [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "sqs:*",
            "Resource": queue_arn,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ]


def test_sqs_task_queues_share_one_tls_only_dead_letter_queue(sqs: Any) -> None:
    # GIVEN no DLQ named by the deployment (stepflow local): two activities' queues
    queue = SQSTaskQueue(client=sqs, prefix="test-tq-")
    queue.create("jobs", {})
    queue.create("more", {})
    # THEN one DLQ exists, shared, and every queue refuses requests without TLS
    urls = sqs.list_queues(QueueNamePrefix="test-tqdlq-")["QueueUrls"]
    assert [url.rsplit("/", 1)[-1] for url in urls] == ["test-tqdlq-shared"]
    dlq = _attributes(sqs, "test-tqdlq-shared")
    assert _denies_plain_http(dlq["Policy"], dlq["QueueArn"])
    for name in ("test-tq-jobs", "test-tq-more"):
        attributes = _attributes(sqs, name)
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive == {"deadLetterTargetArn": dlq["QueueArn"], "maxReceiveCount": 10}
        assert _denies_plain_http(attributes["Policy"], attributes["QueueArn"])


def test_sqs_task_queues_use_the_deployment_dead_letter_queue(sqs: Any) -> None:
    # GIVEN the stack's alarmed DLQ, passed as ACTIVITY_DLQ_ARN
    url = sqs.create_queue(QueueName="stack-activity-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    SQSTaskQueue(client=sqs, prefix="test-tq-", dead_letter_arn=arn).create("jobs", {})
    # THEN the queue dead-letters into it, and no other DLQ is made
    assert "QueueUrls" not in sqs.list_queues(QueueNamePrefix="test-tqdlq-")
    attributes = _attributes(sqs, "test-tq-jobs")
    assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"] == arn
    assert _denies_plain_http(attributes["Policy"], attributes["QueueArn"])


def test_a_queue_made_by_an_older_release_gets_the_policy_and_the_shared_dlq(sqs: Any) -> None:
    sqs.create_queue(QueueName="test-tq-old", Attributes={"VisibilityTimeout": "30"})
    queue = SQSTaskQueue(client=sqs, prefix="test-tq-")
    queue.create("old", {})
    attributes = _attributes(sqs, "test-tq-old")
    assert _denies_plain_http(attributes["Policy"], attributes["QueueArn"])
    assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"] == queue.dead_letter_arn


def test_a_queue_deleted_behind_a_cached_url_is_reported(sqs: Any) -> None:
    queue = SQSTaskQueue(client=sqs, prefix="test-tq-")
    queue.create("jobs", {})
    SQSTaskQueue(client=sqs, prefix="test-tq-").delete("jobs")  # another process
    with pytest.raises(QueueDoesNotExistError):
        queue.send("jobs", {"a": 1})


def test_the_topology_names_the_task_queue_prefix() -> None:
    from stepflow.aws import sqs_task_queue, topology

    assert topology.TASK_QUEUE_PREFIX == sqs_task_queue.QUEUE_PREFIX
    assert SQSTaskQueue(client=object()).dlq_prefix == sqs_task_queue.DLQ_PREFIX
