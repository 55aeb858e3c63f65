"""The API killed between its commit and its send: the execution still finishes.

Two wirings from :func:`stepflow.aws.wiring.build` on moto stand for two
processes: the API (whose SQS client dies on the first send after the commit)
and the stepper/runner functions. Each task handler must still run once.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from pydantic import SecretStr
from stepflow.aws import create_table, wiring
from stepflow.aws.outbox_repair import from_wiring
from stepflow.aws.settings import Settings
from stepflow.aws.sqs_bus import create_queues, decode_message
from stepflow.aws.wiring import Wiring, build
from stepflow.testing.handlers import task_invoker

from tests.moto_env import offline_aws

TABLE = "stepflow-crash"
ROLE = "arn:aws:iam::000000000000:role/StepFlow"
FN = "arn:aws:lambda:us-east-1:000000000000:function:"
DEFINITION = {
    "StartAt": "First",
    "States": {
        "First": {"Type": "Task", "Resource": FN + "first", "Next": "Second"},
        "Second": {"Type": "Task", "Resource": FN + "second", "End": True},
    },
}


class Crash(BaseException):
    """The API process dies (raised by the SQS client, after the commit)."""


class DyingSQS:
    """An SQS client whose sends die once ``armed``; repair messages still go out first.

    ``error``: what a send raises (a :class:`Crash`: the process dies; an ``Exception``:
    SQS refused it, and the API lives on)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.armed = False
        self.error: BaseException = Crash()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def send_message(self, **kwargs: Any) -> Any:
        if self.armed and '"kind":"repair"' not in kwargs["MessageBody"]:
            raise self.error
        return self.client.send_message(**kwargs)


class Rig:
    def __init__(self, repair_delay: int) -> None:
        self.calls: Counter[str] = Counter()
        self.sqs = boto3.client("sqs", region_name="us-east-1")
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(dynamodb, TABLE)
        queue_url, _ = create_queues(self.sqs, "transitions")
        tasks_url, _ = create_queues(self.sqs, "tasks", visibility_timeout=960)
        self.settings = Settings(
            table_name=TABLE,
            queue_url=queue_url,
            tasks_queue_url=tasks_url,
            region="us-east-1",
            repair_delay_seconds=repair_delay,
            outbox_repair_age_seconds=0,
            signing_key=SecretStr("api-crash-test-key-" + "0" * 32),
        )
        handlers = {"first": self.handler("first"), "second": self.handler("second")}
        invoker = task_invoker(handlers)
        self.dying = DyingSQS(self.sqs)
        clients = {"dynamodb": dynamodb, "s3": boto3.client("s3", region_name="us-east-1")}
        self.api = build(self.settings, clients={**clients, "sqs": self.dying}, invoker=invoker)
        self.functions: Wiring = build(
            self.settings, clients={**clients, "sqs": self.sqs}, invoker=invoker
        )

    def handler(self, name: str) -> Any:
        def run(payload: Any) -> Any:
            self.calls[name] += 1
            return {**payload, name: True}

        return run

    def start_and_die(self) -> str:
        arn = self.api.service.call(
            "CreateStateMachine",
            {"name": "M", "definition": json.dumps(DEFINITION), "roleArn": ROLE},
        )["stateMachineArn"]
        self.dying.armed = True
        with pytest.raises(Crash):
            self.api.service.call(
                "StartExecution", {"stateMachineArn": arn, "name": "x", "input": "{}"}
            )
        (record,) = self.functions.log.list_executions(arn)[0]
        return record.execution_arn

    def pump(self, arn: str, seconds: float) -> str:
        """Run the stepper and runner functions on their queues until ``arn`` ends."""
        deadline = time.monotonic() + seconds
        steppers = (
            (self.settings.queue_url, self.functions.stepper),
            (self.settings.tasks_queue_url, self.functions.runner),
        )
        while time.monotonic() < deadline:
            for url, stepper in steppers:
                received = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
                messages = received.get("Messages", [])
                if not messages:
                    continue
                signer = self.functions.signer
                failed = stepper.handle_batch([decode_message(m["Body"], signer) for m in messages])
                assert failed == []
                for m in messages:
                    self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            record = self.functions.log.get(arn)
            assert record is not None
            if record.status != "RUNNING":
                return record.status
            time.sleep(0.05)
        return "RUNNING"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with offline_aws(monkeypatch):
        yield


@pytest.mark.usefixtures("aws")
def test_the_delayed_repair_message_finishes_an_execution_whose_api_died() -> None:
    # GIVEN an API that sends a repair message (1 s delay) before committing
    rig = Rig(repair_delay=1)
    # WHEN it dies between the commit of StartExecution and the send of its outbox
    arn = rig.start_and_die()
    record = rig.functions.log.get(arn)
    assert record is not None and record.outbox, "the commit happened, the send did not"
    # THEN the stepper, woken by the repair message, re-sends the outbox: it finishes
    assert rig.pump(arn, 30.0) == "SUCCEEDED"
    # AND each task ran exactly once
    assert rig.calls == {"first": 1, "second": 1}


@pytest.mark.usefixtures("aws")
def test_by_default_a_failed_send_leaves_a_repair_message_that_finishes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN the default API: no repair message before its commits (round 11), one after a
    # failed send (its delay shortened from 60 s for the test)
    monkeypatch.setattr(wiring, "REPAIR_DELAY_SECONDS", 1)
    rig = Rig(repair_delay=Settings.model_fields["repair_delay_seconds"].default)
    assert rig.api.api_stepper.repair_delay == 0 and rig.api.api_stepper.failed_send_repair == 1
    machine = rig.api.service.call(
        "CreateStateMachine", {"name": "M", "definition": json.dumps(DEFINITION), "roleArn": ROLE}
    )["stateMachineArn"]
    # WHEN SQS refuses the send of StartExecution's outbox (the API lives on: its caller
    # gets the error)
    rig.dying.armed = True
    rig.dying.error = ConnectionError("SQS refused the send")
    with pytest.raises(ConnectionError):
        rig.api.service.call("StartExecution", {"stateMachineArn": machine, "name": "x"})
    rig.dying.armed = False
    (records, _) = rig.functions.log.list_executions(machine)
    (record,) = records
    assert record.outbox, "the commit happened, the send did not"
    # THEN the repair message left after the failed send has the outbox re-sent: it
    # finishes, each task once
    assert rig.pump(record.execution_arn, 30.0) == "SUCCEEDED"
    assert rig.calls == {"first": 1, "second": 1}


@pytest.mark.usefixtures("aws")
def test_without_a_repair_message_the_outbox_repair_job_finishes_it() -> None:
    # GIVEN an API that leaves no repair message, dying after its commit
    rig = Rig(repair_delay=0)
    arn = rig.start_and_die()
    # THEN nothing moves the execution on (no message exists for it)
    assert rig.pump(arn, 2.0) == "RUNNING"
    assert rig.calls == {}
    # WHEN the outbox repair job runs (age bound 0 s) THEN it finds it through the
    # running index and has the stepper re-send the outbox
    assert from_wiring(rig.functions).run() == [arn]
    assert rig.pump(arn, 30.0) == "SUCCEEDED"
    assert rig.calls == {"first": 1, "second": 1}
    # AND a finished execution leaves the running index: the next run finds nothing
    assert from_wiring(rig.functions).run() == []


@pytest.mark.usefixtures("aws")
def test_an_api_dying_after_committing_send_task_success_still_finishes() -> None:
    # GIVEN an execution waiting on an activity task, then a Lambda task
    rig = Rig(repair_delay=1)
    call = rig.api.service.call
    activity = call("CreateActivity", {"name": "approve"})["activityArn"]
    definition = {
        "StartAt": "Approve",
        "States": {
            "Approve": {"Type": "Task", "Resource": activity, "Next": "Second"},
            "Second": {"Type": "Task", "Resource": FN + "second", "End": True},
        },
    }
    machine = call(
        "CreateStateMachine", {"name": "A", "definition": json.dumps(definition), "roleArn": ROLE}
    )["stateMachineArn"]
    arn = call("StartExecution", {"stateMachineArn": machine, "input": "{}"})["executionArn"]
    task = call("GetActivityTask", {"activityArn": activity, "workerName": "w"})
    assert "taskToken" in task
    # WHEN the API dies after committing SendTaskSuccess, before sending the next task
    rig.dying.armed = True
    with pytest.raises(Crash):
        call("SendTaskSuccess", {"taskToken": task["taskToken"], "output": '{"ok": true}'})
    record = rig.functions.log.get(arn)
    assert record is not None and [m.kind for m in record.outbox] == ["task"]
    # THEN the repair message has the outbox re-sent: the execution finishes, the task ran once
    assert rig.pump(arn, 30.0) == "SUCCEEDED"
    assert rig.calls == {"second": 1}


@pytest.mark.usefixtures("aws")
def test_an_api_dying_after_a_commit_that_ends_an_execution_still_tells_its_parent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """review 37: the repair job reads running executions only, so a commit that ends one
    (here StopExecution of a ``.sync`` child, whose outbox tells the parent) is preceded by
    its repair message even in the default mode."""
    monkeypatch.setattr(wiring, "REPAIR_DELAY_SECONDS", 1)
    rig = Rig(repair_delay=Settings.model_fields["repair_delay_seconds"].default)
    clients = {
        "dynamodb": boto3.client("dynamodb", region_name="us-east-1"),
        "s3": boto3.client("s3", region_name="us-east-1"),
    }  # the deployed invoker: it starts the .sync child
    rig.api = build(rig.settings, clients={**clients, "sqs": rig.dying})
    rig.functions = build(rig.settings, clients={**clients, "sqs": rig.sqs})
    call = rig.api.service.call
    waits = {
        "StartAt": "W",
        "States": {
            "W": {"Type": "Wait", "Seconds": 1, "Next": "Long"},
            "Long": {"Type": "Wait", "Seconds": 100_000, "End": True},
        },
    }
    child = call(
        "CreateStateMachine", {"name": "C", "definition": json.dumps(waits), "roleArn": ROLE}
    )
    calls_child = {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.sync:2",
                "Parameters": {"StateMachineArn": child["stateMachineArn"], "Input": {}},
                "End": True,
            }
        },
    }
    parent = call(
        "CreateStateMachine", {"name": "P", "definition": json.dumps(calls_child), "roleArn": ROLE}
    )
    arn = call("StartExecution", {"stateMachineArn": parent["stateMachineArn"], "name": "p"})[
        "executionArn"
    ]
    assert rig.pump(arn, 4.0) == "RUNNING"
    ((started,), _) = rig.functions.log.list_executions(child["stateMachineArn"])
    # WHEN the API dies after committing StopExecution of the child, before its send
    rig.dying.armed = True
    with pytest.raises(Crash):
        call("StopExecution", {"executionArn": started.execution_arn})
    rig.dying.armed = False
    stopped = rig.functions.log.get(started.execution_arn)
    assert stopped is not None and stopped.status == "ABORTED" and stopped.outbox
    # THEN the repair message sent before that commit re-sends it: the parent learns
    assert rig.pump(arn, 30.0) == "FAILED"
    stopped = rig.functions.log.get(started.execution_arn)
    assert stopped is not None and stopped.outbox == ()
