"""The gateway hands a claimed GET to its route and every other request to the API."""

from __future__ import annotations

import json
import urllib.request
from http.server import BaseHTTPRequestHandler
from typing import Any

from stepflow.local.gateway import Gateway
from stepflow.local.routes import route_for


class _Page:
    prefix = "/page/"

    def __init__(self) -> None:
        self.served: list[str] = []

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        self.served.append(request.path)
        body = b"page"
        request.send_response(200)
        request.send_header("Content-Type", "text/plain")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)


def test_route_for_claims_get_under_its_prefix_only() -> None:
    page = _Page()
    assert route_for([page], "GET", "/page/x?y=1") is page
    assert route_for([page], "POST", "/page/x") is None
    assert route_for([page], "GET", "/pages") is None
    assert route_for([page], "GET", "/?/page/") is None


def test_gateway_serves_routes_and_sends_the_rest_to_the_api() -> None:
    calls: list[dict[str, Any]] = []

    def api(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(event)
        return {"statusCode": 200, "headers": {}, "body": json.dumps({"api": True})}

    page = _Page()
    gateway = Gateway("127.0.0.1", 0, api, routes=[page]).start()
    try:
        with urllib.request.urlopen(f"{gateway.url}/page/a?b=1") as reply:
            assert reply.read() == b"page"
        with urllib.request.urlopen(f"{gateway.url}/other") as reply:
            assert json.loads(reply.read()) == {"api": True}
    finally:
        gateway.stop()
    assert page.served == ["/page/a?b=1"]
    assert [c["path"] for c in calls] == ["/other"]
