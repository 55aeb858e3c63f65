"""Live updates through ``stepflow local``: server-sent events of an execution's history.

The execution (Parallel, Map, a caught error) waits in a gated task while the
stream is open, so events arrive as they commit, not after the fact; what the
stream gave is compared with GetExecutionHistory: the same ids and types, each once.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.live.sse_client import follow, messages, stream_url
from stepflow.local import LocalStack

from tests.e2e.waiting import wait_for
from tests.hook_support import HANDLERS, INPUT, MACHINE

ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"
PATIENCE = 60.0
GATE = "arn:aws:lambda:us-east-1:000000000000:function:gate"
GATED: dict[str, Any] = {
    "StartAt": "Gate",
    "States": {
        "Gate": {"Type": "Task", "Resource": GATE, "ResultPath": None, "Next": "Both"},
        **MACHINE["States"],
    },
}


class Gates:
    """The ``gate`` task: blocks until released (each execution's own gate, by input)."""

    def __init__(self) -> None:
        self.open = threading.Event()

    def __call__(self, value: Any) -> Any:
        if not self.open.wait(PATIENCE):
            raise RuntimeError("the gate was never opened")
        return value


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[LocalStack, Gates]]:
    gates = Gates()
    with LocalStack(port=0, handlers={**HANDLERS, "gate": gates}) as stack:
        yield stack, gates


def _history(sfn: Any, arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    token: dict[str, str] = {}
    while True:
        page = sfn.get_execution_history(executionArn=arn, maxResults=50, **token)
        events += page["events"]
        if "nextToken" not in page:
            return events
        token = {"nextToken": page["nextToken"]}


def _start(stack: LocalStack, name: str) -> str:
    sfn = stack.stepfunctions()
    machine = sfn.create_state_machine(
        name=f"live-{name}", definition=json.dumps(GATED), roleArn=ROLE
    )["stateMachineArn"]
    return str(
        sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(INPUT))[
            "executionArn"
        ]
    )


def _raw(url: str, headers: dict[str, str] | None = None) -> list[tuple[str | None, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=PATIENCE) as reply:
        assert reply.headers["Content-Type"].startswith("text/event-stream")
        return list(messages(reply))


def test_the_stream_gives_every_event_once_in_order_as_it_commits(
    live: tuple[LocalStack, Gates],
) -> None:
    stack, gates = live
    gates.open.clear()
    arn = _start(stack, "every")
    received: list[dict[str, Any]] = []
    gated = threading.Event()

    def listen() -> None:
        for event in follow(stack.url, arn, timeout=PATIENCE):
            received.append(event)
            if event["type"] == "LambdaFunctionScheduled":
                gated.set()

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert gated.wait(PATIENCE), "the gate's LambdaFunctionScheduled never arrived"
    assert stack.stepfunctions().describe_execution(executionArn=arn)["status"] == "RUNNING"
    gates.open.set()
    listener.join(PATIENCE)
    assert not listener.is_alive()
    assert wait_for(stack.stepfunctions(), arn)["status"] == "SUCCEEDED"
    history = _history(stack.stepfunctions(), arn)
    types = {e["type"] for e in history}
    assert {"ParallelStateEntered", "MapIterationStarted", "LambdaFunctionFailed"} <= types
    assert [(e["id"], e["type"]) for e in received] == [(e["id"], e["type"]) for e in history]
    assert [e["id"] for e in received] == list(range(1, len(history) + 1))
    assert received[-1]["type"] == "ExecutionSucceeded"
    # The raw stream of the finished execution: one message per event, ids once each.
    raw = _raw(stream_url(stack.url, arn))
    assert [ident for ident, _ in raw] == [str(e["id"]) for e in history]
    streamed = [json.loads(data) for _, data in raw]
    # boto3 parses the API's epoch seconds into datetimes (to the microsecond).
    assert [
        abs(s.pop("timestamp") - h["timestamp"].timestamp()) < 1e-3
        for s, h in zip(streamed, history, strict=True)
    ] == [True] * len(history)
    assert streamed == [{k: v for k, v in h.items() if k != "timestamp"} for h in history]


def test_a_reconnect_resumes_after_its_last_id_without_loss_or_repeats(
    live: tuple[LocalStack, Gates],
) -> None:
    stack, gates = live
    gates.open.set()
    arn = _start(stack, "resume")
    wait_for(stack.stepfunctions(), arn)
    total = len(_history(stack.stepfunctions(), arn))
    url = stream_url(stack.url, arn)
    for k in (0, 1, 7, total - 1):
        header = _raw(url, {"Last-Event-ID": str(k)})
        query = _raw(f"{url}?after={k}")
        assert [int(i or 0) for i, _ in header] == list(range(k + 1, total + 1))
        assert header == query
    assert _raw(url, {"Last-Event-ID": str(total)}) == []  # after the ending event: closes
    resumed = list(follow(stack.url, arn, after=5))
    assert [e["id"] for e in resumed] == list(range(6, total + 1))


def test_bad_input_is_refused_with_a_status(live: tuple[LocalStack, Gates]) -> None:
    stack, _ = live
    unknown = "arn:aws:states:us-east-1:000000000000:execution:nope:nope"
    cases = {
        stream_url(stack.url, unknown): 404,
        stream_url(stack.url, "not-an-arn"): 400,
        stream_url(stack.url, unknown) + "?after=-1": 400,
        stream_url(stack.url, unknown) + "?after=" + "9" * 40: 400,
    }
    for url, status in cases.items():
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=PATIENCE)
        assert refused.value.code == status, url
