"""stepflow local's gateway refuses DNS-rebound and cross-origin requests (raw HTTP).

A page on evil.example whose name is rebound to 127.0.0.1 sends ``Host:
evil.example:PORT``; a page posting across origins sends its own ``Origin``.
Neither reaches the API nor the console's routes; SDK-like requests (no Origin,
the Host of the URL they were given) do, exactly once each.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from stepflow.local.gateway import Gateway
from stepflow.local.hosts import HostGuard, is_loopback


class _Page:
    prefix = "/console/"

    def __init__(self) -> None:
        self.served = 0

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        self.served += 1
        request.send_response(200)
        request.send_header("Content-Length", "2")
        request.end_headers()
        request.wfile.write(b"ok")


class _Served:
    def __init__(self, host: str) -> None:
        self.calls: list[dict[str, Any]] = []
        self.page = _Page()
        self.gateway = Gateway(host, 0, self.api, routes=[self.page]).start()
        self.port = int(self.gateway.url.rsplit(":", 1)[1])

    def api(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.calls.append(event)
        return {"statusCode": 200, "headers": {}, "body": json.dumps({"api": True})}

    def send(self, method: str, path: str, headers: dict[str, str]) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers.items():
                connection.putheader(name, value)
            body = b"{}" if method == "POST" else b""
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            reply = connection.getresponse()
            reply.read()
            return reply.status
        finally:
            connection.close()


@pytest.fixture
def served() -> Iterator[_Served]:
    server = _Served("127.0.0.1")
    yield server
    server.gateway.stop()


def test_a_rebound_host_is_refused_before_the_api_and_the_console(served: _Served) -> None:
    evil = {"Host": f"evil.example:{served.port}"}
    assert served.send("POST", "/", {**evil, "X-Amz-Target": "x.ListExecutions"}) == 403
    assert served.send("GET", "/console/api/graph", evil) == 403
    assert served.send("GET", "/console/", {"Host": f"127.0.0.1:{served.port + 1}"}) == 403
    assert served.send("GET", "/console/", {}) == 403  # no Host at all
    assert (served.calls, served.page.served) == ([], 0)


def test_a_post_from_another_origin_is_refused(served: _Served) -> None:
    own = f"127.0.0.1:{served.port}"
    assert served.send("POST", "/", {"Host": own, "Origin": "http://evil.example"}) == 403
    assert served.send("POST", "/", {"Host": own, "Origin": "null"}) == 403
    assert served.calls == []


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "[::1]"])
def test_sdk_and_same_origin_requests_pass_once_each(served: _Served, name: str) -> None:
    host = f"{name}:{served.port}"
    assert served.send("POST", "/", {"Host": host}) == 200  # an SDK: no Origin
    assert served.send("POST", "/", {"Host": host, "Origin": f"http://{host}"}) == 200
    assert served.send("GET", "/console/", {"Host": host}) == 200
    assert (len(served.calls), served.page.served) == (2, 1)


def test_a_server_bound_beyond_loopback_takes_any_host_but_not_another_origin() -> None:
    guard = HostGuard.for_server("0.0.0.0", 8080)
    assert not guard.refuses("stepflow.internal:8080", None)
    assert guard.refuses("stepflow.internal:8080", "http://evil.example")
    assert not guard.refuses("stepflow.internal:8080", "http://stepflow.internal:8080")
    assert HostGuard.for_server("::1", 80).hosts >= {"[::1]:80", "localhost:80"}
    assert is_loopback("127.0.0.2") and is_loopback("[::1]") and not is_loopback("10.0.0.1")
