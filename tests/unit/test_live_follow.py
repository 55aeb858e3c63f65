"""``follow`` against a scripted SSE server: streams that open count as progress (a long
``Wait`` closes many empty streams), only refused connects are bounded, ``: end`` ends it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from stepflow.live.sse_client import NoLiveStreamError, follow

ARN = "arn:aws:states:us-east-1:000000000000:execution:m:e"


class Script:
    """Answers each GET with the next scripted reply: a status, or a stream's body."""

    def __init__(self, replies: list[int | bytes]) -> None:
        self.replies = replies
        self.asked: list[str] = []


def _serve(script: Script) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            script.asked.append(self.headers.get("Last-Event-ID", ""))
            reply = script.replies.pop(0) if script.replies else 404
            if isinstance(reply, int):
                self.send_response(reply)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def serve() -> Iterator[object]:
    servers: list[Iterator[str]] = []

    def start(script: Script) -> str:
        servers.append(_serve(script))
        return next(servers[-1])

    yield start
    for server in servers:
        next(server, None)


def test_many_empty_streams_are_progress_and_end_ends_it(
    serve: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("stepflow.live.sse_client.time.sleep", lambda s: None)
    event = b'id: 1\ndata: {"id":1,"type":"WaitStateEntered"}\n\n'
    quiet: list[int | bytes] = [b": keep-alive\n\n"] * 30
    ending = b'id: 2\ndata: {"id":2,"type":"ExecutionSucceeded"}\n\n: end\n\n'
    script = Script([event, *quiet, 503, 503, ending])
    url = serve(script)  # type: ignore[operator]
    assert [e["id"] for e in follow(url, ARN, reconnects=3)] == [1, 2]
    assert script.asked == ["0"] + ["1"] * 33


def test_refused_connects_in_a_row_are_bounded(
    serve: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("stepflow.live.sse_client.time.sleep", lambda s: None)
    script = Script([503] * 10)
    url = serve(script)  # type: ignore[operator]
    with pytest.raises(NoLiveStreamError):
        list(follow(url, ARN, reconnects=3))
    assert len(script.asked) == 4
