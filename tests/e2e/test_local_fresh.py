"""Embedded stacks started one after another in one process each start on an empty account."""

from __future__ import annotations

import json

from stepflow.local import LocalStack

ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"
PASS = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})


def test_a_stack_started_after_another_stopped_finds_none_of_its_state() -> None:
    with LocalStack(port=0) as first:
        first.stepfunctions().create_state_machine(name="left", definition=PASS, roleArn=ROLE)
        first.client("sqs").create_queue(QueueName="left-behind")
        names = [m["name"] for m in first.stepfunctions().list_state_machines()["stateMachines"]]
        assert names == ["left"]
    with LocalStack(port=0) as second:
        assert second.stepfunctions().list_state_machines()["stateMachines"] == []
        queues = second.client("sqs").list_queues().get("QueueUrls", [])
        assert not any(url.endswith("/left-behind") for url in queues)
