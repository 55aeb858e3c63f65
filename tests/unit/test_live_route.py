"""The live route over the in-memory log, behind the local gateway: order, resume, bounds.

The same route ``stepflow local`` serves (tests/e2e/test_live_local.py runs it on
moto's DynamoDB); here the log is the in-memory one, committed to between reads.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.live.sse import LiveRoute
from stepflow.live.sse_client import follow, messages, stream_url
from stepflow.local.gateway import Gateway
from stepflow.runtime.memory import InMemoryLog
from stepflow.runtime.ports import ExecutionRecord

ARN = "arn:aws:states:us-east-1:000000000000:execution:m:run"
PATIENCE = 30.0


def _api(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 418, "headers": {}, "body": "api"}


def _event(i: int, kind: str = "PassStateEntered", pad: int = 0) -> dict[str, Any]:
    return {"id": i, "type": kind, "previousEventId": i - 1, "timestamp": 1.0, "pad": "x" * pad}


class Served:
    """An in-memory log with one execution, and the route behind a gateway."""

    def __init__(self, **route: Any) -> None:
        self.log = InMemoryLog()
        record = ExecutionRecord(ARN, "arn:m", "run", {}, "RUNNING", 0, {})
        self.log.create(record, [_event(1, "ExecutionStarted")])
        self.record, self.n = record, 1
        self.route = LiveRoute(self.log, interval=0.005, **route)
        self.gateway = Gateway("127.0.0.1", 0, _api, routes=[self.route]).start()
        self.url = self.gateway.url

    def commit(self, *events: dict[str, Any]) -> None:
        seq = self.record.seq
        # The head ends with its ending event (the stream ends on both).
        ended = (
            events[-1]["type"].startswith("Execution") and events[-1]["type"] != "ExecutionRedriven"
        )
        status = "SUCCEEDED" if ended else "RUNNING"
        self.record = ExecutionRecord(ARN, "arn:m", "run", {}, status, seq + 1, {})
        self.log.commit(self.record, seq, list(events))
        self.n = int(events[-1]["id"])


@pytest.fixture
def served() -> Iterator[Served]:
    s = Served()
    yield s
    s.route.stop.set()
    s.gateway.stop()


def test_events_committed_while_streaming_arrive_once_in_order(served: Served) -> None:
    got: list[int] = []
    listener = threading.Thread(
        target=lambda: got.extend(e["id"] for e in follow(served.url, ARN)), daemon=True
    )
    listener.start()
    for i in range(2, 40, 3):  # commits of three events, read as they come
        served.commit(_event(i), _event(i + 1), _event(i + 2))
    served.commit(_event(41, "ExecutionSucceeded"))
    listener.join(PATIENCE)
    assert got == list(range(1, 42))
    assert served.route.opened == 1


def test_a_stream_open_too_long_closes_and_the_client_resumes_without_loss() -> None:
    served = Served(max_seconds=0.05)
    try:
        got: list[int] = []
        listener = threading.Thread(
            target=lambda: got.extend(e["id"] for e in follow(served.url, ARN)), daemon=True
        )
        listener.start()
        for i in range(2, 30):
            served.commit(_event(i))
            time.sleep(0.01)
        served.commit(_event(30, "ExecutionFailed"))
        listener.join(PATIENCE)
        assert got == list(range(1, 31))
        assert served.route.opened > 1  # it did reconnect
    finally:
        served.gateway.stop()


def test_streams_past_the_bound_are_refused_with_503() -> None:
    served = Served(max_streams=1)
    try:
        first = urllib.request.urlopen(stream_url(served.url, ARN), timeout=PATIENCE)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(stream_url(served.url, ARN), timeout=PATIENCE)
        assert refused.value.code == 503 and refused.value.headers["Retry-After"] == "1"
        served.commit(_event(2, "ExecutionSucceeded"))
        assert [i for i, _ in messages(first)] == ["1", "2"]
        first.close()
        _wait(lambda: _status(served) == 200)  # the slot is free again
    finally:
        served.gateway.stop()


def test_a_client_refused_with_503_tries_again_and_gets_the_stream_once_a_slot_frees() -> None:
    served = Served(max_streams=1)
    try:
        holder = urllib.request.urlopen(stream_url(served.url, ARN), timeout=PATIENCE)
        got: list[int] = []
        follower = threading.Thread(
            target=lambda: got.extend(e["id"] for e in follow(served.url, ARN, reconnects=50)),
            daemon=True,
        )
        follower.start()
        _wait(lambda: served.route.refused > 0)
        served.commit(_event(2, "ExecutionSucceeded"))  # the holder's stream ends: a free slot
        follower.join(PATIENCE)
        assert got == [1, 2]
        holder.close()
    finally:
        served.gateway.stop()


def test_a_client_that_stops_reading_loses_its_stream_and_frees_the_slot() -> None:
    served = Served(max_streams=1, write_timeout=0.2)
    try:
        for i in range(2, 200):  # about 50 MB of history: far more than socket buffers
            served.commit(_event(i, pad=256 * 1024))
        port = int(served.url.rsplit(":", 1)[1])
        stalled = socket.create_connection(("127.0.0.1", port))
        path = stream_url(served.url, ARN)[len(served.url) :]
        stalled.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        _wait(lambda: served.route.opened == 1)
        _wait(lambda: _status(served) != 503)  # never read: the write timed out
        stalled.close()
    finally:
        served.gateway.stop()


def test_stopping_the_gateway_ends_the_open_streams() -> None:
    served = Served()
    reply = urllib.request.urlopen(stream_url(served.url, ARN), timeout=PATIENCE)
    received = messages(reply)
    first = next(received)  # the stream is serving before the gateway stops
    served.gateway.stop()
    assert [first[0], *(i for i, _ in received)] == ["1"]  # then its end, not a hang
    assert served.route.stop.is_set()


def test_the_api_still_gets_everything_else(served: Served) -> None:
    with pytest.raises(urllib.error.HTTPError) as other:
        urllib.request.urlopen(f"{served.url}/live/other", timeout=PATIENCE)
    assert other.value.code == 418


@pytest.mark.parametrize(
    ("suffix", "headers", "status"),
    [
        ("arn:aws:states:us-east-1:000000000000:execution:m:none", {}, 404),
        ("arn:aws:states:us-east-1:000000000000:stateMachine:m", {}, 400),
        ("%00" * 3, {}, 400),
        ("x" * 5000, {}, 400),
        (ARN + "?after=abc", {}, 400),
        (ARN, {"Last-Event-ID": "-3"}, 400),
        (ARN, {"Last-Event-ID": "1" * 13}, 400),
    ],
)
def test_hostile_requests_get_a_status_not_a_stream(
    served: Served, suffix: str, headers: dict[str, str], status: int
) -> None:
    request = urllib.request.Request(f"{served.url}/live/executions/{suffix}", headers=headers)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=PATIENCE)
    assert refused.value.code == status
    assert "__type" in json.loads(refused.value.read())


def _status(served: Served) -> int:
    try:
        with urllib.request.urlopen(
            stream_url(served.url, ARN) + "?after=999999", timeout=PATIENCE
        ) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _wait(check: Any) -> None:
    deadline = time.monotonic() + PATIENCE
    while not check():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.02)


@pytest.mark.parametrize(
    "arn", ["arn:aws:states:execution::x", "arn:aws:states:us-east-1:1:execution:m"]
)
def test_with_a_policy_an_arn_without_a_machine_field_gets_the_unknown_404(arn: str) -> None:
    """The policy names a machine; an ARN the regex lets through without one answers 404."""
    from stepflow.api.access import AccessPolicy

    rule = '[{"principals": ["*"], "actions": ["states:*"], "stateMachines": ["*"]}]'
    served = Served(policy=AccessPolicy.from_json(rule), caller=lambda _h: "arn:aws:iam::1:user/a")
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(stream_url(served.url, arn), timeout=PATIENCE)
        assert refused.value.code == 404
        assert json.loads(refused.value.read())["__type"] == "ExecutionDoesNotExist"
    finally:
        served.gateway.stop()
