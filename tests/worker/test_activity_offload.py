"""An activity task whose message is over SQS's 256 KiB: stored, handed out whole, once.

The activity queue is SQS on moto, whose client refuses what SQS refuses
(:mod:`tests.sqs_limit`); before the offload, the router's send failed.
"""

from __future__ import annotations

import json
from typing import Any

from stepflow.activities import ActivityRouter, ActivityService
from stepflow.asl import parse
from stepflow.aws.sqs_task_queue import SQSTaskQueue
from stepflow.runtime import InMemoryBus, InMemoryLog, Stepper
from stepflow.runtime.offload import OFFLOADED
from stepflow.runtime.outcome import TaskOutcome
from stepflow.runtime.payloads import InMemoryPayloadStore

from tests.sqs_limit import refuse_oversize
from tests.worker.harness import SM, activity, task_machine


def test_an_activity_task_over_sqs_limit_is_offloaded_and_handed_out_whole(sqs: Any) -> None:
    refused = refuse_oversize(sqs)
    bus, log, store = InMemoryBus(now=1_000_000.0), InMemoryLog(), InMemoryPayloadStore()
    queue = SQSTaskQueue(client=sqs, prefix="moto-tq-")
    machine = parse(task_machine(activity("jobs")))
    stepper = Stepper(
        log=log,
        bus=bus,
        definitions=lambda _arn: machine,
        clock=lambda: bus.now,
        invoker=lambda body: TaskOutcome.failed("Unexpected", "no inline tasks here"),
        router=ActivityRouter(queue, bus, signer=bus.signer, payloads=store),
    )
    service = ActivityService(
        stepper=stepper, queue=queue, signer=bus.signer, clock=lambda: bus.now, payloads=store
    )
    service.create_activity({"name": "jobs"})
    # an input under the 256 KiB payload limit, in UTF-8 bytes, but over it with its envelope
    big = {"blob": "é" * 131_000}
    arn = stepper.start_execution(state_machine_arn=SM, name="e1", input=big, seed=1).execution_arn
    _drain(bus, stepper)
    assert len(refused) == 0 and store.puts == 1
    url = sqs.get_queue_url(QueueName="moto-tq-jobs")["QueueUrl"]
    peek = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"][0]
    assert OFFLOADED in json.loads(peek["Body"])["body"] and len(peek["Body"]) < 1_000
    task = service.get_activity_task({"activityArn": activity("jobs"), "waitSeconds": 0})
    assert json.loads(task["input"]) == big
    service.send_task_success({"taskToken": task["taskToken"], "output": '{"ok": true}'})
    _drain(bus, stepper)
    record = log.get(arn)
    assert record is not None and record.status == "SUCCEEDED"
    assert [e["type"] for e in log.history(arn).events].count("ActivityScheduled") == 1


def test_an_activity_task_whose_stored_body_was_overwritten_stays_queued_for_the_dlq(
    sqs: Any,
) -> None:
    bus, log, store = InMemoryBus(now=1_000_000.0), InMemoryLog(), InMemoryPayloadStore()
    queue = SQSTaskQueue(client=sqs, prefix="moto-tq-")
    machine = parse(task_machine(activity("jobs")))
    stepper = Stepper(
        log=log,
        bus=bus,
        definitions=lambda _arn: machine,
        clock=lambda: bus.now,
        invoker=lambda body: TaskOutcome.failed("Unexpected", "no inline tasks here"),
        router=ActivityRouter(queue, bus, signer=bus.signer, payloads=store),
    )
    service = ActivityService(
        stepper=stepper, queue=queue, signer=bus.signer, clock=lambda: bus.now, payloads=store
    )
    service.create_activity({"name": "jobs"})
    stepper.start_execution(state_machine_arn=SM, name="e1", input={"blob": "é" * 131_000}, seed=1)
    _drain(bus, stepper)
    (key,) = store.objects
    store.objects[key] = store.objects[key][:-1] + b" "  # someone with write access to it
    forged = bus.signer.forged
    # WHEN a worker asks for it THEN nothing is handed out, and the message is not deleted
    assert service.get_activity_task({"activityArn": activity("jobs"), "waitSeconds": 0}) == {}
    url = sqs.get_queue_url(QueueName="moto-tq-jobs")["QueueUrl"]
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    assert sum(int(v) for v in counts.values()) == 1 and bus.signer.forged == forged


def _drain(bus: InMemoryBus, stepper: Stepper) -> None:
    while len(bus):
        batch = bus.receive_batch(10)
        stepper.handle_batch(batch)
        for message in batch:
            bus.ack(message)
