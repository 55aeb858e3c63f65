"""End to end: GetExecutionHistory newest first on ``stepflow local``, with boto3.

A history of a few hundred events in some seventy commits (written to the stack's
log directly, so one event item per commit); ``reverseOrder`` pages come back as the
forward history reversed, each page reading (DynamoDB ``ScannedCount``, on the stack's
own client) no more items than the forward page of the same events; tokens of the
other direction or of another execution are refused.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from stepflow.local import LocalStack
from stepflow.runtime import CoordinationLog, ExecutionRecord

from tests.e2e.waiting import wait_for

ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"
MACHINE = "arn:aws:states:us-east-1:000000000000:stateMachine:Direct"
LOOPS = 20
LOOP = {
    "StartAt": "Init",
    "States": {
        "Init": {"Type": "Pass", "Result": {"n": 0}, "Next": "More?"},
        "More?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.n", "NumericLessThan": LOOPS, "Next": "Add"}],
            "Default": "Done",
        },
        "Add": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, 1)"}, "Next": "More?"},
        "Done": {"Type": "Succeed"},
    },
}


class ItemsRead:
    """Adds up ``ScannedCount`` of the Queries the stack's DynamoDB client makes on one
    execution's items (the stack's own jobs query the same client from other threads)."""

    def __init__(self, client: Any, execution_arn: str) -> None:
        self.count = 0
        self._pk = f"EX#{execution_arn}"
        self._lock = threading.Lock()
        self._current = threading.local()
        client.meta.events.register("provide-client-params.dynamodb.Query", self._before)
        client.meta.events.register("after-call.dynamodb.Query", self._after)

    def _before(self, params: dict[str, Any], **_: Any) -> None:
        values = params.get("ExpressionAttributeValues", {})
        self._current.mine = values.get(":pk") == {"S": self._pk}

    def _after(self, parsed: dict[str, Any], **_: Any) -> None:
        if getattr(self._current, "mine", False):
            with self._lock:
                self.count += int(parsed.get("ScannedCount", 0))


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0, repair_every=3600.0) as running:
        yield running


def run_loop(sfn: Any, name: str) -> str:
    machine = sfn.create_state_machine(name=name, definition=json.dumps(LOOP), roleArn=ROLE)
    arn = str(sfn.start_execution(stateMachineArn=machine["stateMachineArn"])["executionArn"])
    assert wait_for(sfn, arn, 60)["status"] == "SUCCEEDED"
    return arn


def write_history(log: CoordinationLog, size: int) -> str:
    """A new execution (no state machine behind it) with ``size`` events, its ARN."""
    arn = MACHINE.replace(":stateMachine:", ":execution:") + ":e1"
    rng, ids = random.Random(size), itertools.count(1)
    seq = 0
    while (n := next(ids)) <= size:
        count = min(rng.randint(1, 9), size - n + 1)
        numbers = [n] + [next(ids) for _ in range(count - 1)]
        events: list[dict[str, Any]] = [
            {"id": i, "previousEventId": i - 1, "type": "PassStateEntered", "timestamp": 1.0}
            for i in numbers
        ]
        seq += 1
        record = ExecutionRecord(arn, MACHINE, "e1", {}, "RUNNING", seq, {"format": 1})
        if seq == 1:
            log.create(record, events)
        else:
            log.commit(record, seq - 1, events)
    return arn


def paged(sfn: Any, reads: ItemsRead, arn: str, limit: int, reverse: bool) -> list[Any]:
    """``(items read, event ids)`` of each page, following the tokens."""
    found, token = [], None
    while True:
        before = reads.count
        page = sfn.get_execution_history(
            executionArn=arn,
            maxResults=limit,
            reverseOrder=reverse,
            **({"nextToken": token} if token else {}),
        )
        found.append((reads.count - before, [e["id"] for e in page["events"]]))
        token = page.get("nextToken")
        if token is None:
            return found


def test_reverse_history_pages_read_backwards_over_boto3(stack: LocalStack) -> None:
    # GIVEN an execution with 300 events in commits of 1 to 9, and a count of items read
    sfn = stack.stepfunctions()
    assert stack.wiring is not None
    arn = write_history(stack.wiring.log, 300)
    reads = ItemsRead(stack.wiring.client("dynamodb"), arn)
    everything = sfn.get_execution_history(executionArn=arn, maxResults=1000)
    ids = [e["id"] for e in everything["events"]]
    assert "nextToken" not in everything and ids == list(range(1, len(ids) + 1))
    limit = 25
    # WHEN it is paged both ways
    forward = paged(sfn, reads, arn, limit, reverse=False)
    backward = paged(sfn, reads, arn, limit, reverse=True)
    # THEN newest first is the forward history reversed, each event once, and no page
    # reads more items than the forward page of the same events
    assert [i for _, page in backward for i in page] == ids[::-1]
    assert len(backward) == len(forward) == len(ids) // limit
    for (items, events), (forward_items, forward_events) in zip(
        backward, reversed(forward), strict=True
    ):
        assert events == forward_events[::-1]
        assert 0 < items <= forward_items, (backward, forward)


def test_history_tokens_are_refused_across_directions_and_executions(stack: LocalStack) -> None:
    sfn = stack.stepfunctions()
    first, second = run_loop(sfn, "TokensOne"), run_loop(sfn, "TokensTwo")
    backward = sfn.get_execution_history(executionArn=first, maxResults=5, reverseOrder=True)
    forward = sfn.get_execution_history(executionArn=first, maxResults=5)
    refused = [
        {"executionArn": second, "reverseOrder": True, "nextToken": backward["nextToken"]},
        {"executionArn": first, "reverseOrder": True, "nextToken": forward["nextToken"]},
        {"executionArn": first, "nextToken": backward["nextToken"]},
        {"executionArn": first, "reverseOrder": True, "nextToken": "aHJ8MDAwMDAvcjE6OTk="},
    ]
    for params in refused:
        with pytest.raises(ClientError) as caught:
            sfn.get_execution_history(maxResults=5, **params)
        assert caught.value.response["Error"]["Code"] == "InvalidToken", params
