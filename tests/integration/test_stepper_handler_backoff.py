"""A map run's delivery that failed in the stepper Lambda: when it comes back.

The handler runs for real over SQS on moto, on a virtual clock that drives moto's
visibility timeouts (180 s on the transition queue). The run's head write fails by an
injected fault: a transient one (DynamoDB throttling, conflicts exhausted on a hot head)
must bring the delivery back within seconds, not after the visibility timeout; a
permanent one must not loop for ever: the delivery reaches the dead-letter queue after
its receives. Receives and write attempts are counted.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3  # type: ignore[import-untyped]
import moto.sqs.models
import pytest
from moto import mock_aws
from stepflow.aws import redelivery
from stepflow.aws import stepper_lambda as stepper_handler
from stepflow.aws.log_table import LogUnavailableError
from stepflow.aws.sqs_bus import MAX_RECEIVE_COUNT, SQSBus, create_queues
from stepflow.engine import RunTask
from stepflow.runtime import InMemoryLog, Stepper
from stepflow.runtime.outcome import TaskOutcome
from stepflow.runtime.ports import ConflictError, ExecutionRecord
from stepflow.testing.handlers import run_handler

from tests.integration.test_stepper_handler import CONTEXT, SIGNER, Clock, aws_env, lambda_event
from tests.unit import map_run_support as support
from tests.unit.map_run_support import KEY, MACHINE, start_message


class FaultyLog(InMemoryLog):
    """Fails the run head's next commits with the errors in ``faults`` (one each)."""

    def __init__(self) -> None:
        super().__init__()
        self.faults: list[Exception] = []
        self.attempts = 0
        """Commits of the run's head tried."""

    def commit(
        self, record: ExecutionRecord, expected_seq: int, events: Any, *, fence: Any = None
    ) -> None:
        if record.execution_arn == KEY:
            self.attempts += 1
            if self.faults:
                raise self.faults.pop(0)
        super().commit(record, expected_seq, events, fence=fence)


@dataclass
class Queue:
    sqs: Any
    url: str
    dlq: str
    clock: Clock
    log: FaultyLog
    visibility_changes: list[int]
    url_lookups: list[str]

    def receives(self, horizon: int) -> int:
        """Receive the StartMapRun (sent first) as it comes back over ``horizon`` virtual
        seconds, handle it each time (deleting it once handled, as the event source
        mapping does): how often it was received."""
        received = 0
        start = self.clock.now
        while self.clock.now < start + horizon:
            every = {"AttributeNames": ["All"], "MessageAttributeNames": ["All"]}
            reply = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=1, **every)
            for m in reply.get("Messages", []):
                received += 1
                answer = stepper_handler.handler(lambda_event([m]), CONTEXT)
                if not answer["batchItemFailures"]:
                    self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
                    return received
            self.clock.now += 1
        return received

    def dead_letters(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.dlq, AttributeNames=["ApproximateNumberOfMessages"]
        )
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[Queue]:
    aws_env(monkeypatch)
    clock = Clock(float(int(time.time())))
    monkeypatch.setattr(moto.sqs.models, "unix_time", lambda dt=None: clock.now)
    monkeypatch.setattr(moto.sqs.models, "unix_time_millis", lambda dt=None: clock.now * 1000)
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url, dlq = create_queues(sqs, "transitions")
        changes: list[int] = []
        change = sqs.change_message_visibility

        def counted(**request: Any) -> Any:
            changes.append(int(request["VisibilityTimeout"]))
            return change(**request)

        monkeypatch.setattr(sqs, "change_message_visibility", counted)
        lookups: list[str] = []
        get_queue_url = sqs.get_queue_url

        def looked_up(**request: Any) -> Any:
            lookups.append(str(request["QueueName"]))
            return get_queue_url(**request)

        monkeypatch.setattr(sqs, "get_queue_url", looked_up)
        monkeypatch.setattr(redelivery, "_QUEUE_URLS", {})  # as in a cold Lambda
        log = FaultyLog()
        calls: Counter[Any] = Counter()

        def invoke(body: dict[str, Any]) -> TaskOutcome:
            calls[repr(body["input"])] += 1
            command = RunTask(body["task_id"], body["resource"], body["input"], body["state_name"])
            return run_handler({"work": support.work}, command)

        bus = SQSBus(url, signer=SIGNER, client=sqs)
        stepper = Stepper(
            log=log, bus=bus, definitions=lambda _: MACHINE, clock=clock, invoker=invoke
        )
        stepper_handler.configure(stepper, SIGNER)
        bus.send(start_message([1, 2], max_concurrency=2))
        try:
            yield Queue(sqs, url, dlq, clock, log, changes, lookups)
        finally:
            stepper_handler.configure(None)


def test_a_throttled_head_write_is_retried_within_seconds(queue: Queue) -> None:
    queue.log.faults = [LogUnavailableError("ProvisionedThroughputExceeded")] * 2
    assert queue.receives(horizon=60) == 3  # two throttled, the third applied
    assert queue.visibility_changes == [2, 10]
    assert queue.log.attempts == 3
    assert len(queue.url_lookups) == 1  # the queue's URL asked once, not per invocation
    record = queue.log.get(KEY)
    assert record is not None and record.status == "RUNNING"


def test_a_head_write_that_keeps_conflicting_is_retried_within_seconds(queue: Queue) -> None:
    conflicts = stepper_handler.get_stepper().map_runs().max_conflicts
    queue.log.faults = [ConflictError(KEY, 0)] * conflicts  # one delivery's every try
    assert queue.receives(horizon=60) == 2
    assert queue.visibility_changes == [2]
    assert queue.log.attempts == conflicts + 1


def test_a_permanent_error_keeps_the_visibility_timeout_and_reaches_the_dlq(
    queue: Queue,
) -> None:
    queue.log.faults = [ValueError("malformed")] * 100
    assert queue.receives(horizon=60) == 1  # not back before the visibility timeout
    assert queue.receives(horizon=2000) == MAX_RECEIVE_COUNT - 1  # then each 180 s, 5 in all
    assert queue.receives(horizon=2000) == 0  # never again: it is a dead letter
    assert queue.dead_letters() == 1
    assert queue.visibility_changes == []
    assert queue.log.attempts == MAX_RECEIVE_COUNT


def test_an_outage_reaches_the_dlq_after_five_receives_three_of_them_hastened(
    queue: Queue,
) -> None:
    """DynamoDB down for good: back after 2, 10 and 30 s, then the visibility timeout
    (receives at about 0, 3, 14, 45 and 226 s of the virtual clock), then a dead letter."""
    queue.log.faults = [LogUnavailableError("ServiceUnavailable")] * 100
    assert queue.receives(horizon=60) == 4
    assert queue.receives(horizon=2000) == MAX_RECEIVE_COUNT - 4
    assert queue.receives(horizon=2000) == 0
    assert queue.dead_letters() == 1
    assert queue.visibility_changes == [2, 10, 30]
    assert queue.log.attempts == MAX_RECEIVE_COUNT
    assert len(queue.url_lookups) == 1
