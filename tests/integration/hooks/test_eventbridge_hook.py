"""The EventBridge hook on moto: AWS's documented event shape, one entry per status change.

AWS's examples (Step Functions Developer Guide, "EventBridge (CloudWatch Events)
for Step Functions execution status changes", section "Step Functions event
examples": https://docs.aws.amazon.com/step-functions/latest/dg/cw-events.html)
are reproduced below as the reference. The events are read back as EventBridge
delivers them (a rule on the bus with an SQS target), and compared field by field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.hooks import ExecutionInfo, HookEvent, hook_events
from stepflow.hooks.status_change import AWS_SOURCE, DETAIL_TYPE, PAYLOAD_LIMIT
from stepflow.hooks.support import ExecutionFacts
from stepflow.testing import execute

from tests.moto_env import offline_aws

boto3 = pytest.importorskip("boto3")

from stepflow.aws.hook_eventbridge import (  # noqa: E402
    EventBridgeDeliveryError,
    EventBridgeHook,
    batches,
    entry_size,
)

SM = "arn:aws:states:us-east-1:012345678912:stateMachine:state-machine"
ARN = "arn:aws:states:us-east-1:012345678912:execution:state-machine-name:execution-name"
BUS = "stepflow-status"

AWS_SUCCEEDED = {
    "version": "0",
    "id": "315c1398-40ff-a850-213b-158f73e60175",
    "detail-type": "Step Functions Execution Status Change",
    "source": "aws.states",
    "account": "012345678912",
    "time": "2019-02-26T19:42:21Z",
    "region": "us-east-1",
    "resources": [ARN],
    "detail": {
        "executionArn": ARN,
        "stateMachineArn": SM,
        "name": "execution-name",
        "status": "SUCCEEDED",
        "startDate": 1547148840101,
        "stopDate": 1547148840122,
        "input": "{}",
        "inputDetails": {"included": True},
        "output": '"Hello World!"',
        "outputDetails": {"included": True},
    },
}
AWS_RUNNING_DETAIL = {
    "status": "RUNNING",
    "stopDate": None,
    "input": "{}",
    "inputDetails": {"included": True},
    "output": None,
    "outputDetails": None,
}
AWS_FAILED_DETAIL = {"status": "FAILED", "output": None, "outputDetails": None}

DESCRIBE_EXECUTION_EXTRAS = {
    "error",
    "cause",
    "redriveCount",
    "redriveDate",
    "redriveStatus",
    "redriveStatusReason",
}
"""Fields beyond the example: DescribeExecution's, which AWS says the detail carries."""


class Bus:
    """A moto bus with a rule sending every status change to an SQS queue."""

    def __init__(self, source: str) -> None:
        self.events = boto3.client("events", region_name="us-east-1")
        self.sqs = boto3.client("sqs", region_name="us-east-1")
        self.events.create_event_bus(Name=BUS)
        self.queue = self.sqs.create_queue(QueueName="seen")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        pattern = {"source": [source], "detail-type": [DETAIL_TYPE]}
        self.events.put_rule(Name="all", EventBusName=BUS, EventPattern=json.dumps(pattern))
        self.events.put_targets(
            Rule="all", EventBusName=BUS, Targets=[{"Id": "q", "Arn": queue_arn}]
        )

    def delivered(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10)
            messages = got.get("Messages", [])
            if not messages:
                return out
            for message in messages:
                out.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])


class Counting:
    """Wraps the events client, counting PutEvents calls and entries."""

    def __init__(self, client: Any, fail: dict[int, str] | None = None) -> None:
        self.client = client
        self.calls: list[int] = []
        self.fail = dict(fail or {})
        """Entry position -> error code to answer on the next call (moto never fails)."""

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        self.calls.append(len(Entries))
        if self.fail:
            failing = {i: self.fail.pop(i) for i in list(self.fail) if i < len(Entries)}
            ok = [e for i, e in enumerate(Entries) if i not in failing]
            if ok:
                self.client.put_events(Entries=ok)
            results = [
                {"ErrorCode": failing[i], "ErrorMessage": "no"}
                if i in failing
                else {"EventId": "x"}
                for i in range(len(Entries))
            ]
            return {"FailedEntryCount": len(failing), "Entries": results}
        return dict(self.client.put_events(Entries=Entries))


@pytest.fixture
def aws() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as env, offline_aws(env):
        yield


def _run(definition: dict[str, Any], payload: Any = None) -> list[HookEvent]:
    handlers = {"arn:aws:states:::lambda:invoke": lambda _: "Hello World!"}
    result = execute(definition, payload if payload is not None else {}, handlers=handlers)
    info = ExecutionInfo(ARN, SM, "execution-name")
    return list(hook_events(info, result.history))


HELLO = {
    "StartAt": "Hello",
    "States": {
        "Hello": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": True}
    },
}
FAIL = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Oops", "Cause": "it broke"}}}


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def test_events_match_aws_documented_example_field_by_field(aws: None) -> None:
    # GIVEN a bus whose rule is the one written for Step Functions (source aws.states)
    bus = Bus(AWS_SOURCE)
    hook = EventBridgeHook(Counting(bus.events), BUS, source=AWS_SOURCE)
    # WHEN a real execution's events reach the hook
    hook.handle(_run(HELLO))
    # THEN EventBridge delivers one RUNNING and one SUCCEEDED event, in AWS's shape
    running, succeeded = sorted(bus.delivered(), key=lambda e: e["detail"]["status"] != "RUNNING")
    for event in (running, succeeded):
        # The envelope is EventBridge's (moto's leaves out "account"); the rest is the entry's
        assert set(event) | {"account"} == set(AWS_SUCCEEDED)
        assert event["source"] == "aws.states"
        assert event["detail-type"] == AWS_SUCCEEDED["detail-type"]
        assert event["resources"] == [ARN]
        assert set(event["detail"]) == set(AWS_SUCCEEDED["detail"]) | DESCRIBE_EXECUTION_EXTRAS
    expected = AWS_SUCCEEDED["detail"]
    assert isinstance(expected, dict)
    detail = succeeded["detail"]
    for key, value in expected.items():
        if key in ("startDate", "stopDate"):
            assert isinstance(detail[key], int), key  # epoch milliseconds, as AWS's
        else:
            assert detail[key] == value, key  # the same ARN, name, status, input, output
    assert _shape({k: detail[k] for k in expected}) == _shape(expected)
    assert detail["stopDate"] >= detail["startDate"]
    assert detail["error"] is None and detail["cause"] is None
    assert detail["redriveCount"] == 0 and detail["redriveStatus"] == "NOT_REDRIVABLE"
    for key, value in AWS_RUNNING_DETAIL.items():
        assert running["detail"][key] == value, key
    assert running["detail"]["startDate"] == detail["startDate"]


def test_a_failure_carries_error_and_cause_and_is_redrivable(aws: None) -> None:
    bus = Bus("stepflow.states")
    EventBridgeHook(bus.events, BUS).handle(_run(FAIL))
    failed = next(e for e in bus.delivered() if e["detail"]["status"] == "FAILED")
    assert failed["source"] == "stepflow.states"
    for key, value in AWS_FAILED_DETAIL.items():
        assert failed["detail"][key] == value
    assert failed["detail"]["error"] == "Oops"
    assert failed["detail"]["cause"] == "it broke"
    assert failed["detail"]["redriveStatus"] == "REDRIVABLE"


def test_one_entry_per_status_change_and_none_for_repeats(aws: None) -> None:
    bus = Bus(AWS_SOURCE)
    counting = Counting(bus.events)
    hook = EventBridgeHook(counting, BUS, source=AWS_SOURCE)
    events = _run(HELLO)
    doubled = events + events  # the same batch holding every event twice
    hook.handle(doubled)
    hook.handle(events)  # delivered again
    assert sum(counting.calls) == 2
    assert len(bus.delivered()) == 2


def test_an_end_without_its_start_reads_the_head_once(aws: None) -> None:
    bus = Bus(AWS_SOURCE)
    reads: list[str] = []

    def facts(arn: str) -> ExecutionFacts:
        reads.append(arn)
        return ExecutionFacts(1547148840.101, "{}")

    hook = EventBridgeHook(bus.events, BUS, source=AWS_SOURCE, facts=facts)
    end = [e for e in _run(HELLO) if e.kind == "ExecutionSucceeded"]
    hook.handle(end)
    [event] = bus.delivered()
    assert event["detail"]["startDate"] == 1547148840101
    assert event["detail"]["input"] == "{}"
    assert reads == [ARN]


def test_express_executions_send_nothing_unless_asked(aws: None) -> None:
    bus = Bus(AWS_SOURCE)
    express = [
        HookEvent(e.kind, ExecutionInfo(ARN, SM, "x", "EXPRESS"), e.id, e.timestamp, e.event)
        for e in _run(HELLO)
    ]
    counting = Counting(bus.events)
    EventBridgeHook(counting, BUS, source=AWS_SOURCE).handle(express)
    assert counting.calls == []
    EventBridgeHook(counting, BUS, source=AWS_SOURCE, express=True).handle(express)
    assert sum(counting.calls) == 2


def test_large_payloads_are_left_out_as_aws_does(aws: None) -> None:
    bus = Bus(AWS_SOURCE)
    big = {"blob": "x" * (PAYLOAD_LIMIT // 2 + 10)}
    echo = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    hook = EventBridgeHook(bus.events, BUS, source=AWS_SOURCE)
    hook.handle(_run(echo, big))
    by_status = {e["detail"]["status"]: e["detail"] for e in bus.delivered()}
    # input alone fits: RUNNING carries it; input + output do not: SUCCEEDED leaves input out
    assert by_status["RUNNING"]["inputDetails"] == {"included": True}
    assert by_status["SUCCEEDED"]["input"] is None
    assert by_status["SUCCEEDED"]["inputDetails"] == {"included": False}
    assert json.loads(by_status["SUCCEEDED"]["output"]) == big
    assert by_status["SUCCEEDED"]["outputDetails"] == {"included": True}


def test_entries_go_in_calls_of_ten_within_256_kb() -> None:
    small = {"Source": "s", "DetailType": "d", "Detail": "{}", "Resources": ["r"]}
    assert [len(b) for b in batches([small] * 23)] == [10, 10, 3]
    large = dict(small, Detail="x" * (100 * 1024))
    assert [len(b) for b in batches([large] * 5)] == [2, 2, 1]
    assert all(sum(map(entry_size, b)) <= 256 * 1024 for b in batches([large] * 5))


def test_failed_entries_are_retried_then_raised(aws: None) -> None:
    bus = Bus(AWS_SOURCE)
    sleeps: list[float] = []
    flaky = Counting(bus.events, fail={1: "ThrottlingException"})
    hook = EventBridgeHook(flaky, BUS, source=AWS_SOURCE, sleep=sleeps.append)
    hook.handle(_run(HELLO))
    assert flaky.calls == [2, 1]  # the failed entry alone is sent again
    assert len(sleeps) == 1
    assert len(bus.delivered()) == 2
    # An entry that keeps failing: raised after the last attempt, and put on redelivery
    bus2 = Counting(bus.events, fail={0: "InternalFailure"})
    hook2 = EventBridgeHook(bus2, BUS, source=AWS_SOURCE, attempts=1, sleep=sleeps.append)
    events = _run(HELLO)
    with pytest.raises(EventBridgeDeliveryError) as raised:
        hook2.handle(events)
    assert raised.value.errors == ["InternalFailure"]
    hook2.handle(events)  # the stream's redelivery: only the failed entry is put again
    assert bus2.calls == [2, 1]
