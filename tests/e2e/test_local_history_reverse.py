"""End to end: GetExecutionHistory newest first on ``stepflow local``, with boto3.

A counter loop leaves a few hundred events; ``reverseOrder`` pages come back as the
forward history reversed, each page reading (DynamoDB ``ScannedCount``, on the stack's
own client) no more items than the forward page of the same events; tokens of the
other direction or of another execution are refused.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from stepflow.local import LocalStack

from tests.e2e.waiting import wait_for

ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"
LOOPS = 60
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
    """Adds up ``ScannedCount`` of every Query the stack's DynamoDB client makes."""

    def __init__(self, client: Any) -> None:
        self.count = 0
        self._lock = threading.Lock()
        client.meta.events.register("after-call.dynamodb.Query", self._after)

    def _after(self, parsed: dict[str, Any], **_: Any) -> None:
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
    # GIVEN an execution that left a few hundred events, and a count of items read
    sfn = stack.stepfunctions()
    arn = run_loop(sfn, "HistoryLoop")
    assert stack.wiring is not None
    reads = ItemsRead(stack.wiring.client("dynamodb"))
    everything = sfn.get_execution_history(executionArn=arn, maxResults=1000)
    ids = [e["id"] for e in everything["events"]]
    assert "nextToken" not in everything and ids == list(range(1, len(ids) + 1))
    limit = next(d for d in range(7, 40) if len(ids) % d == 0)
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
        assert 0 < items <= forward_items


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
