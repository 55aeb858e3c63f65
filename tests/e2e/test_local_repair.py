"""End to end: the outbox repair job of `stepflow local` finishes an execution whose API died.

The API's stepper here loses every send after its commit (the process died
between its commit and its send, taking its delayed repair message with it):
only the repair job, a loop on the local stack as a schedule is on AWS, can
get the execution going again. Its task must still run exactly once.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

import pytest
from botocore.exceptions import ClientError
from stepflow.local import LocalStack
from stepflow.runtime import Message

from tests.e2e.test_local_stack import FN, ROLE
from tests.e2e.waiting import wait_for

CALLS: Counter[str] = Counter()
LOCK = threading.Lock()


def work(payload: Any) -> Any:
    with LOCK:
        CALLS[payload["id"]] += 1
    return {"done": payload["id"]}


class Died(Exception):
    """The API process died: nothing after its commit happens (no send, no outbox cleared)."""


class LostSends:
    """A bus whose sends die (the process went down right after its commit)."""

    def __init__(self) -> None:
        self.lost: list[Message] = []

    def send(self, message: Message, delay_seconds: int = 0) -> None:
        self.lost.append(message)
        if message.kind != "repair":  # the delayed repair message is lost silently
            raise Died(message.id)


def test_the_repair_job_finishes_an_execution_whose_api_died_after_its_commit() -> None:
    # GIVEN the local stack with its repair job every 0.3 s, and an API that loses its sends
    with LocalStack(port=0, handlers={"work": work}, repair_every=0.3, repair_age=0) as stack:
        assert stack.wiring is not None
        lost = LostSends()
        stack.wiring.api_stepper.bus = stack.wiring.api_stepper.tasks_bus = lost
        sfn = stack.stepfunctions()
        definition = {
            "StartAt": "Work",
            "States": {"Work": {"Type": "Task", "Resource": FN + "work", "End": True}},
        }
        machine = sfn.create_state_machine(
            name="repaired", definition=json.dumps(definition), roleArn=ROLE
        )["stateMachineArn"]
        # WHEN an execution starts: committed, but the API dies sending its task message
        # (and its delayed repair message is lost too); the client sees an error
        with pytest.raises(ClientError):
            sfn.start_execution(stateMachineArn=machine, name="a", input='{"id": "a"}')
        assert {m.kind for m in lost.lost} == {"repair", "task"}
        [execution] = sfn.list_executions(stateMachineArn=machine)["executions"]
        arn = execution["executionArn"]
        # THEN the repair job re-sends the outbox: it succeeds, its task ran once
        described = wait_for(sfn, arn, timeout=60.0)
        assert described["status"] == "SUCCEEDED", described
        assert Counter({"a": 1}) == CALLS
