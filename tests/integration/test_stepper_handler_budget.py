"""The stepper Lambda handler under evaluation budgets: a slow execution fails alone,
and the handler stops starting work when the invocation is about to time out."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import boto3  # type: ignore[import-untyped]
import moto.sqs.models
import pytest
from moto import mock_aws
from stepflow.asl import parse
from stepflow.aws import stepper_lambda as stepper_handler
from stepflow.aws.sqs_bus import SQSBus, create_queues
from stepflow.aws.stepper_lambda import decode_message
from stepflow.engine.codec import decode_state
from stepflow.errors import StatesErrorName
from stepflow.runtime import InMemoryLog, Message, Stepper

from tests.integration.test_stepper_handler import (
    DEFINITION,
    FN,
    SIGNER,
    Clock,
    aws_env,
    lambda_event,
    run_task,
)
from tests.unit.test_eval_budget import FakeBudget

SM = "arn:aws:states:us-east-1:123456789012:stateMachine:"
SLOW = parse(
    {
        "QueryLanguage": "JSONata",
        "StartAt": "Spin",
        "States": {
            "Spin": {
                "Type": "Pass",
                "Output": "{% $count($map([1..10000000], function($v){$v})) %}",
                "End": True,
            }
        },
    }
)
MACHINES = {SM + "Orders": parse(DEFINITION), SM + "Slow": SLOW}


class Harness:
    def __init__(self, sqs: Any, url: str, clock: Clock) -> None:
        self.sqs, self.url, self.clock = sqs, url, clock
        self.log = InMemoryLog()
        self.calls: list[Any] = []
        self.budgets: list[FakeBudget] = []

        def invoke(body: dict[str, Any]) -> Any:
            self.calls.append(body["input"]["lines"][0])
            return run_task(body)

        self.stepper = Stepper(
            log=self.log,
            bus=SQSBus(url, signer=SIGNER, client=sqs),
            definitions=MACHINES.__getitem__,
            clock=clock,
            invoker=invoke,
            budgets=self._budget(decision=2_000),
            start_budgets=self._budget(defer=50),
        )

    def _budget(self, **limits: int) -> Callable[[], FakeBudget]:
        def make() -> FakeBudget:
            self.budgets.append(FakeBudget(**limits))
            return self.budgets[-1]

        return make

    def start(self, machine: str, name: str, value: Any) -> str:
        record = self.stepper.start_execution(
            state_machine_arn=SM + machine, name=name, input=value, seed=3
        )
        return record.execution_arn

    def receive(self) -> list[dict[str, Any]]:
        every = {"AttributeNames": ["All"], "MessageAttributeNames": ["All"]}
        got = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, **every)
        messages: list[dict[str, Any]] = got.get("Messages", [])
        return messages

    def run(self, messages: list[dict[str, Any]], context: Any) -> list[str]:
        response = stepper_handler.handler(lambda_event(messages), context)
        failed = [item["itemIdentifier"] for item in response["batchItemFailures"]]
        for m in messages:
            if m["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
        return failed

    def status_seq(self, arn: str) -> int:
        record = self.log.get(arn)
        assert record is not None
        return record.seq

    def status(self, arn: str) -> tuple[str, str | None, str | None]:
        record = self.log.get(arn)
        assert record is not None
        state = decode_state(record.state)
        return state.status, state.error, state.cause


def context(remaining: list[int]) -> Any:
    """A Lambda context whose remaining time is read from ``remaining`` (last value sticks)."""

    def left() -> int:
        return remaining.pop(0) if len(remaining) > 1 else remaining[0]

    return SimpleNamespace(
        function_name="stepper",
        memory_limit_in_mb=512,
        invoked_function_arn=FN + "stepper",
        aws_request_id="req-1",
        get_remaining_time_in_millis=left,
    )


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    aws_env(monkeypatch)
    clock = Clock(float(int(time.time())))
    monkeypatch.setattr(moto.sqs.models, "unix_time", lambda dt=None: clock.now)
    monkeypatch.setattr(moto.sqs.models, "unix_time_millis", lambda dt=None: clock.now * 1000)
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url, _ = create_queues(sqs, "transitions")
        h = Harness(sqs, url, clock)
        stepper_handler.configure(h.stepper, SIGNER)
        try:
            yield h
        finally:
            stepper_handler.configure(None)


def test_a_slow_execution_fails_alone_and_the_rest_of_its_batch_goes_on(harness: Harness) -> None:
    # GIVEN a batch with a slow execution's deferred first decision between two others' tasks
    first = harness.start("Orders", "e1", {"lines": [1]})
    slow = harness.start("Slow", "slow", {})
    second = harness.start("Orders", "e2", {"lines": [2]})
    assert harness.status(slow)[0] == "RUNNING"  # the API left its first decision to the queue
    batch = harness.receive()
    assert len(batch) == 3
    # WHEN the handler processes the batch (plenty of time left)
    failed = harness.run(batch, context([60_000]))
    # THEN no record failed: the slow execution failed itself, on its decision budget
    assert failed == []
    status, error, cause = harness.status(slow)
    assert (status, error) == ("FAILED", StatesErrorName.RUNTIME)
    assert "decision budget of 10 s exceeded" in (cause or "")
    # AND the other two executions' tasks ran, once each, and their results are committed
    # (issue 18: by the invocation that ran them; no result message is queued)
    assert len(harness.calls) == 2
    for arn in (first, second):
        events = [e["type"] for e in harness.log.history(arn).events]
        assert events.count("LambdaFunctionSucceeded") == 1
    assert harness.receive() == []


def test_when_time_runs_short_the_rest_is_sent_again_not_failed(harness: Harness) -> None:
    # GIVEN three executions' task messages in one batch
    arns = [harness.start("Orders", f"e{i}", {"lines": [i]}) for i in range(3)]
    batch = harness.receive()
    assert len(batch) == 3
    # WHEN the invocation has time for one decision only (12 s < 10 s budget + 5 s margin;
    # the first message of an invocation always goes ahead)
    failed = harness.run(batch, context([12_000]))
    # THEN nothing is reported failed (no receive count is spent on someone else's time)
    assert failed == []
    assert len(harness.calls) == 1
    # AND the two messages not started come back at once as new messages, first delivery
    again = harness.receive()
    kinds = sorted(json.loads(m["Body"])["kind"] for m in again)
    assert kinds == ["event", "task", "task"]  # the first one's result, the two re-sent tasks
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in again} == {"1"}
    # AND the next invocation finishes them: each task ran exactly once
    assert harness.run(again, context([60_000])) == []
    assert sorted(harness.calls) == [0, 1, 2]
    for arn in arns:
        assert harness.status(arn)[0] == "RUNNING"  # now in its 20-minute Wait


def test_an_invocation_started_short_of_time_still_applies_its_first_executions_events(
    harness: Harness,
) -> None:
    # GIVEN an execution whose task ran short of time: its result event is on the queue
    arn = harness.start("Orders", "e0", {"lines": [0]})
    assert harness.run(harness.receive(), context([12_000])) == []
    [result] = harness.receive()
    assert json.loads(result["Body"])["kind"] == "event"
    # WHEN an invocation that starts with less than a decision's budget and margin (12 s)
    # gets it: the first message of an invocation always goes ahead. It was routed, then
    # deferred when its execution's events were to be applied, and sent again as a new
    # message, with a new receive count: at this time left, sent again for ever.
    assert harness.run([result], context([12_000])) == []
    # THEN it is applied once, and nothing comes back
    events = [e["type"] for e in harness.log.history(arn).events]
    assert events.count("LambdaFunctionSucceeded") == 1
    assert events.count("TaskStateExited") == 1
    assert harness.receive() == []
    assert len(harness.calls) == 1


def test_after_a_repair_routed_the_next_execution_waits_for_time(harness: Harness) -> None:
    # GIVEN a repair message for execution x and a result event of execution y
    x = harness.start("Orders", "x", {"lines": [0]})
    y = harness.start("Orders", "y", {"lines": [1]})
    queued = harness.receive()
    mine = [m for m in queued if _decoded(m).execution_arn == y]
    assert harness.run(mine, context([12_000])) == []
    [event] = [
        m for m in map(_decoded, harness.receive()) if m.execution_arn == y and m.kind == "event"
    ]
    repair = Message(x, f"{x}#repair", "repair", {})
    answers = iter([True, True])  # time while routing, none left for y's decision

    def has_time() -> bool:
        return next(answers, False)

    before = harness.status_seq(y)
    # WHEN one batch routes both: the repair is applied while routing (that is progress)
    assert harness.stepper.handle_batch([repair, event], has_time) == []
    # THEN y's events wait for an invocation with time: not applied, sent back once
    assert harness.status_seq(y) == before
    assert [_decoded(m).execution_arn for m in harness.receive()].count(y) == 1


def _decoded(raw: dict[str, Any]) -> Message:
    return decode_message(raw["Body"], SIGNER, None)
