"""The gateway's connections send without Nagle's delay.

A reply is written as headers then body on a kept-alive HTTP/1.1 connection;
with Nagle's algorithm the body waited for the client's delayed ACK of the
headers (40 ms on Linux), so every API call through ``stepflow local`` took at
least 40 ms. The socket each request is served on must have TCP_NODELAY set.
"""

from __future__ import annotations

import socket
import urllib.request
from http.server import BaseHTTPRequestHandler
from typing import Any

from stepflow.local.gateway import Gateway


class _Probe:
    """A route that reports TCP_NODELAY of the connection it is served on."""

    prefix = "/probe"

    def __init__(self) -> None:
        self.seen: list[int] = []

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        self.seen.append(request.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        request.send_response(204)
        request.send_header("Content-Length", "0")
        request.end_headers()


def test_each_connection_is_served_with_tcp_nodelay() -> None:
    def api(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"statusCode": 200, "headers": {}, "body": "{}"}

    probe = _Probe()
    gateway = Gateway("127.0.0.1", 0, api, routes=[probe]).start()
    try:
        for _ in range(2):  # two connections
            with urllib.request.urlopen(f"{gateway.url}/probe") as reply:
                assert reply.status == 204
    finally:
        gateway.stop()
    assert len(probe.seen) == 2
    assert all(probe.seen), probe.seen
