"""Hostile clients of ``stepflow proxy``, over raw sockets, counting what the upstream receives.

The proxy signs whatever it forwards with its own credentials: a request the
upstream could read differently (two lengths, a folded header, a dot segment)
must not be forwarded at all, and only the JSON protocol's headers go on.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from botocore.credentials import ReadOnlyCredentials
from stepflow.proxy.forward import Forwarder, ProxyServer, Upstream


class Recorder:
    """An upstream answering ``{}`` to everything, recording each request it receives."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        recorder = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.seen.append((self.command, self.path, dict(self.headers.items())))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = do_PUT = _any  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1/"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    recorder.close()


def _forwarder(upstream: Recorder) -> Forwarder:
    credentials = ReadOnlyCredentials("AKIDPROXY", "secret", None)
    return Forwarder(Upstream.parse(upstream.url), "eu-west-1", lambda: credentials)


@pytest.fixture
def proxy(upstream: Recorder) -> Iterator[ProxyServer]:
    with ProxyServer(_forwarder(upstream)) as server:
        yield server


def exchange(port: int, raw: bytes, timeout: float = 10) -> bytes:
    """Send ``raw`` on a new connection; what is answered until the proxy closes (or the
    first response is whole, on a kept-alive connection: a second would never come)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(raw)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            lengths = [int(h[15:]) for h in head.split(b"\r\n") if h.startswith(b"Content-Length:")]
            if b"Connection: close" not in head and lengths and len(body) >= lengths[0]:
                break
    return answer


def request(port: int, *lines: str, body: bytes = b"{}", target: str = "POST /") -> bytes:
    head = [f"{target} HTTP/1.1", f"Host: 127.0.0.1:{port}", *lines]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def statuses(answer: bytes) -> list[int]:
    return [int(line.split()[1]) for line in answer.split(b"\r\n") if line.startswith(b"HTTP/1.")]


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"


@pytest.mark.parametrize(
    ("name", "lines", "body"),
    [
        ("two lengths", ["Content-Length: 2", f"Content-Length: {2 + len(SMUGGLED)}"], SMUGGLED),
        ("chunked", ["Transfer-Encoding: chunked"], b"2\r\n{}\r\n0\r\n\r\n" + SMUGGLED),
        ("folded", ["Content-Length: 2", "X-Amz-Target: AWSStepFunctions.A", " .B"], b"{}"),
        ("nul", ["Content-Length: 2", "X-Amz-Target: AWSStepFunctions.A\x00B"], b"{}"),
        ("bare cr", ["Content-Length: 2", "User-Agent: a\rb"], b"{}"),
        ("two hosts", ["Host: evil.example", "Content-Length: 2"], b"{}"),
        ("no colon", ["Content-Length: 2", "this is no header"], b"{}"),
        ("space in name", ["Content-Length : 2"], b"{}"),
    ],
)
def test_an_ambiguous_request_is_refused_and_nothing_forwarded(
    upstream: Recorder, proxy: ProxyServer, name: str, lines: list[str], body: bytes
) -> None:
    before = len(upstream.seen)
    answer = exchange(proxy.port, request(proxy.port, *lines, body=body))
    assert statuses(answer) == [400], (name, answer)
    assert b"Connection: close" in answer
    assert len(upstream.seen) == before, upstream.seen[before:]
    assert proxy.forwarder.forwarded == 0


@pytest.mark.parametrize(
    "target",
    [
        "GET /../prod/x",
        "POST /../prod/",
        "POST /%2e%2e/prod/",
        "POST /%252E%252E/prod/",
        "POST /./",
        "POST http://evil.example/",
        "POST //evil.example/",
        "POST /?Action=x",
        "POST /x",
        "GET /",
        "PUT /",
        "GET /console/../v1/",
    ],
)
def test_only_post_slash_is_forwarded(upstream: Recorder, proxy: ProxyServer, target: str) -> None:
    before = len(upstream.seen)
    answer = exchange(proxy.port, request(proxy.port, "Content-Length: 2", target=target))
    assert statuses(answer) == [400], answer
    assert len(upstream.seen) == before
    assert proxy.forwarder.forwarded == 0


def test_only_the_json_protocols_headers_are_forwarded(
    upstream: Recorder, proxy: ProxyServer
) -> None:
    before = len(upstream.seen)
    sent = request(
        proxy.port,
        "Content-Length: 2",
        "Content-Type: application/x-amz-json-1.0",
        "X-Amz-Target: AWSStepFunctions.ListStateMachines",
        "User-Agent: aws-cli/2",
        "Cookie: session=1",
        "X-Forwarded-For: 10.0.0.1",
        "X-Amz-Security-Token: client-token",
        "amz-sdk-invocation-id: 1",
        "Proxy-Authorization: Basic eA==",
    )
    assert statuses(exchange(proxy.port, sent)) == [200]
    assert len(upstream.seen) == before + 1
    method, path, headers = upstream.seen[-1]
    assert (method, path) == ("POST", "/v1/")
    names = {name.lower() for name in headers}
    assert names - {"host", "content-length", "accept-encoding"} == {
        "content-type",
        "x-amz-target",
        "user-agent",
        "x-amz-date",
        "authorization",
    }
    assert headers["X-Amz-Target"] == "AWSStepFunctions.ListStateMachines"


def test_another_origin_is_refused_on_any_bind_address(upstream: Recorder) -> None:
    before = len(upstream.seen)
    with ProxyServer(_forwarder(upstream), "0.0.0.0", 0, allow_remote=True) as server:
        evil = request(server.port, "Content-Length: 2", "Origin: http://evil.example")
        assert statuses(exchange(server.port, evil)) == [403]
        assert len(upstream.seen) == before
        own = request(server.port, "Content-Length: 2", f"Origin: http://127.0.0.1:{server.port}")
        assert statuses(exchange(server.port, own)) == [200]
    assert len(upstream.seen) == before + 1


def test_a_stalled_body_times_out(upstream: Recorder) -> None:
    before = len(upstream.seen)
    with ProxyServer(_forwarder(upstream), read_timeout=0.5) as server:
        answer = exchange(server.port, request(server.port, "Content-Length: 100", body=b"{"))
        assert statuses(answer) == [408]
        assert exchange(server.port, b"POST / HTTP/1.1\r\n") == b""  # headers never end: closed
    assert len(upstream.seen) == before


def _trickle(port: int, head: bytes, raw: bytes, pause: float) -> bytes:
    """Send ``head``, then ``raw`` a byte at a time, ``pause`` apart (each read well inside
    the read timeout)."""
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(head)
        for byte in raw:
            try:
                connection.sendall(bytes([byte]))
            except OSError:
                break  # the proxy gave up on us
            time.sleep(pause)
        connection.settimeout(10)
        with contextlib.suppress(OSError):
            while chunk := connection.recv(65536):
                answer += chunk
    return answer


@pytest.mark.parametrize("part", ["body", "headers"])
def test_a_trickled_request_meets_a_deadline_not_just_a_read_timeout(
    upstream: Recorder, part: str
) -> None:
    """One byte every 0.1 s never trips the 1 s read timeout; the 1.5 s deadline ends it.

    Headers cut short must not be forwarded as a request either (a Content-Length of 0
    would otherwise make the truncated request look whole).
    """
    before = len(upstream.seen)
    with ProxyServer(_forwarder(upstream), read_timeout=1.0, request_deadline=1.5) as server:
        if part == "body":
            raw = request(server.port, "Content-Length: 60", body=b"{" + b" " * 58 + b"}")
        else:
            raw = request(server.port, "Content-Length: 0", "X-Padding: " + "p" * 40, body=b"")
        began = time.monotonic()
        split = raw.index(b"\r\n\r\n") + 4 if part == "body" else 20
        answer = _trickle(server.port, raw[:split], raw[split:], 0.1)
        assert time.monotonic() - began < 5.0  # cut at the deadline, not after every byte
        assert statuses(answer) == [408]
        assert statuses(exchange(server.port, request(server.port, "Content-Length: 2"))) == [200]
    assert len(upstream.seen) == before + 1  # only the whole request went upstream


def test_the_deadline_starts_at_a_requests_first_byte_not_at_an_idle_keep_alive(
    upstream: Recorder,
) -> None:
    """A kept-alive connection idle 0.8 s, then a request sent over 1 s: both answered."""
    before = len(upstream.seen)
    server = ProxyServer(_forwarder(upstream), read_timeout=1.0, request_deadline=1.5)
    with server, socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(request(server.port, "Content-Length: 2"))
        assert statuses(_read_one(connection)) == [200]
        time.sleep(0.8)
        second = request(server.port, "Content-Length: 2")
        step = len(second) // 5 + 1
        for start in range(0, len(second), step):
            connection.sendall(second[start : start + step])
            time.sleep(0.2)
        assert statuses(_read_one(connection)) == [200]
    assert len(upstream.seen) == before + 2


def _read_one(connection: socket.socket) -> bytes:
    """One whole response (with a Content-Length) from a kept-alive connection."""
    answer = b""
    while True:
        chunk = connection.recv(65536)
        if not chunk:
            return answer
        answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        lengths = [int(h[15:]) for h in head.split(b"\r\n") if h.startswith(b"Content-Length:")]
        if lengths and len(body) >= lengths[0]:
            return answer


def test_past_max_connections_the_proxy_answers_503(upstream: Recorder) -> None:
    before = len(upstream.seen)
    with ProxyServer(_forwarder(upstream), max_connections=2) as server:
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2)]
        try:
            for _ in range(3):
                answer = exchange(server.port, request(server.port, "Content-Length: 2"))
                assert statuses(answer) == [503]
                assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["__type"] == "ServiceUnavailable"
            assert server.refused_busy == 3
            assert len(upstream.seen) == before
        finally:
            for connection in idle:
                connection.close()
        deadline = time.monotonic() + 10  # the idle connections' threads see EOF and leave
        while statuses(exchange(server.port, request(server.port, "Content-Length: 2"))) != [200]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert len(upstream.seen) == before + 1


@pytest.mark.parametrize("path", ["/../prod/x", "/%2E%2E/prod/", "http://evil.example/"])
def test_the_forwarder_itself_refuses_a_path_the_signer_would_normalise(
    upstream: Recorder, path: str
) -> None:
    from stepflow.proxy.forward import ProxyError

    forwarder = _forwarder(upstream)
    before = len(upstream.seen)
    with pytest.raises(ProxyError) as refused:
        forwarder.open("POST", path, [], b"{}")
    assert refused.value.status == 400
    assert (forwarder.forwarded, len(upstream.seen)) == (0, before)
