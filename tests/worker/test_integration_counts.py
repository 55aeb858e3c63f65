"""Integration calls on the durable runtime, counted: what Retry repeats, what a lease does not.

Every test drives the real Stepper (in-memory log and bus on a virtual clock)
over the real IntegrationInvoker on moto, and counts the SNS ``Publish`` calls
botocore makes (a ``before-call`` hook) and the messages a subscribed queue got.

What the task lease protects: a task message delivered again while its attempt
runs (another worker backs off until the lease runs out) or after its result
was recorded (the recorded result is used, nothing is called). What it cannot
protect: a stepper that dies after the service accepted the call and before the
result is committed. The message comes back, the attempt is still open, and the
call is made again: a publish / send / putEvents is at least once, as the
tests below count. Only the target can deduplicate (FIFO topics and queues with
a MessageDeduplicationId the workflow derives from ``$$.Execution.Id`` and the
state's name).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from stepflow.integrations import IntegrationInvoker, default_registry
from stepflow.runtime.clients import FixedClients
from stepflow.runtime.outcome import TaskOutcome

from tests.moto_env import REGION, offline_aws
from tests.worker.harness import Harness, task_machine

PUBLISH = "arn:aws:states:::sns:publish"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with offline_aws(monkeypatch):
        yield {name: boto3.client(name, region_name=REGION) for name in ("sns", "sqs")}


def _publishes(sns: Any) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    sns.meta.events.register("before-call.sns.Publish", lambda params, **_: calls.append(params))
    return calls


def _subscribed_queue(aws: dict[str, Any]) -> tuple[str, str]:
    topic = aws["sns"].create_topic(Name="orders")["TopicArn"]
    url = aws["sqs"].create_queue(QueueName="orders-inbox")["QueueUrl"]
    arn = aws["sqs"].get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    aws["sns"].subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=arn["Attributes"]["QueueArn"],
        Attributes={"RawMessageDelivery": "true"},
    )
    return topic, url


def _received(aws: dict[str, Any], url: str) -> list[str]:
    got = aws["sqs"].receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [m["Body"] for m in got]


def test_a_retried_publish_is_called_once_per_attempt(aws: dict[str, Any]) -> None:
    calls = _publishes(aws["sns"])
    missing = "arn:aws:sns:us-east-1:123456789012:missing"
    retry = [{"ErrorEquals": ["SNS.NotFoundException"], "MaxAttempts": 2, "IntervalSeconds": 5}]
    machine = task_machine(PUBLISH, Parameters={"TopicArn": missing, "Message": "m"}, Retry=retry)
    h = Harness(machine, invoker=IntegrationInvoker(default_registry(), FixedClients(**aws)))
    arn = h.start()
    h.advance(60)
    assert h.status(arn) == "SUCCEEDED"  # caught after the retries
    assert len(calls) == 3
    assert h.types(arn).count("TaskFailed") == 3


def test_a_successful_publish_is_called_and_delivered_once(aws: dict[str, Any]) -> None:
    calls = _publishes(aws["sns"])
    topic, url = _subscribed_queue(aws)
    machine = task_machine(PUBLISH, Parameters={"TopicArn": topic, "Message.$": "$.order"})
    h = Harness(machine, invoker=IntegrationInvoker(default_registry(), FixedClients(**aws)))
    arn = h.start({"order": "o-1"})
    h.advance(60)
    assert h.status(arn) == "SUCCEEDED"
    assert len(calls) == 1
    assert _received(aws, url) == ["o-1"]


def test_a_crash_between_the_publish_and_its_commit_publishes_again(
    aws: dict[str, Any],
) -> None:
    calls = _publishes(aws["sns"])
    topic, url = _subscribed_queue(aws)
    real = IntegrationInvoker(default_registry(), FixedClients(**aws))
    crashes = [True]

    def crash_after_the_call(body: dict[str, Any]) -> TaskOutcome:
        outcome = real(body)
        if crashes:
            crashes.pop()
            raise RuntimeError("the stepper died after SNS accepted the message")
        return outcome

    machine = task_machine(PUBLISH, Parameters={"TopicArn": topic, "Message": "m"})
    h = Harness(machine, invoker=crash_after_the_call)
    arn = h.start()
    h.advance(3600)
    assert h.status(arn) == "SUCCEEDED"
    assert h.types(arn).count("TaskSucceeded") == 1  # the history records one success ...
    assert len(calls) == 2  # ... but SNS was called twice
    assert sorted(_received(aws, url)) == ["m", "m"]
    assert json.dumps(h.output(arn))  # the output is the second publish's response


def test_an_unreachable_endpoint_fails_the_task_once_into_its_catch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from botocore.config import Config
    from stepflow.aws.role_clients import RoleClients

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    clients = RoleClients(
        assume_roles=False,
        region=REGION,
        endpoint_url="http://127.0.0.1:9",  # nothing listens: connection refused
        configs={"sns": Config(retries={"total_max_attempts": 1}, connect_timeout=1)},
    )
    topic = "arn:aws:sns:us-east-1:123456789012:orders"
    machine = task_machine(PUBLISH, Parameters={"TopicArn": topic, "Message": "m"})
    h = Harness(machine, invoker=IntegrationInvoker(default_registry(), clients))
    deliveries = 0
    handle = h.stepper.handle_batch

    def counted(batch: Any) -> Any:
        nonlocal deliveries
        deliveries += 1
        if deliveries > 5:  # the bug: redelivered until the DLQ; stop the loop here
            raise AssertionError("the task message keeps coming back")
        return handle(batch)

    monkeypatch.setattr(h.stepper, "handle_batch", counted)
    arn = h.start()
    assert h.status(arn) == "SUCCEEDED"  # the Catch ran
    failed = [e for e in h.history(arn) if e["type"] == "TaskFailed"]
    assert len(failed) == 1
    assert failed[0]["taskFailedEventDetails"]["error"] == "SNS.SdkClientException"


def test_a_callback_that_wins_the_race_with_the_submission_keeps_task_submitted(
    aws: dict[str, Any],
) -> None:
    # A fast consumer: SendTaskSuccess arrives while the send's response is not yet
    # committed. AWS's history still has TaskSubmitted (with the send's response) before
    # TaskSucceeded; so has StepFlow's: the early result waits in the frame for it.
    # sns:publish here: the harness sends sqs tasks to its own invoker.
    topic, url = _subscribed_queue(aws)
    real = IntegrationInvoker(default_registry(), FixedClients(**aws))
    harness: list[Harness] = []

    def fast_consumer(body: dict[str, Any]) -> TaskOutcome:
        outcome = real(body)
        [message] = aws["sqs"].receive_message(QueueUrl=url)["Messages"]
        token = json.loads(message["Body"])["token"]
        harness[0].service.send_task_success({"taskToken": token, "output": '{"fast": 1}'})
        return outcome

    parameters = {"TopicArn": topic, "Message": {"token.$": "$$.Task.Token"}}
    machine = task_machine(PUBLISH + ".waitForTaskToken", Parameters=parameters)
    harness.append(Harness(machine, invoker=fast_consumer))
    h = harness[0]
    arn = h.start()
    h.advance(60)
    assert h.status(arn) == "SUCCEEDED"
    types = h.types(arn)
    assert types[types.index("TaskStarted") + 1 : types.index("TaskSucceeded")] == ["TaskSubmitted"]
