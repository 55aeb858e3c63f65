"""A whole HTTP response, and writing one to a ``BaseHTTPRequestHandler``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

__all__ = ["SECURITY_HEADERS", "Response", "json_response", "write"]

SECURITY_HEADERS = {
    # Same-origin scripts, styles and fetches only: no inline script, no CDN.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
"""Sent with every console response."""


@dataclass(frozen=True)
class Response:
    """Status, headers and body of one console response."""

    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, value: Any) -> Response:
    """``value`` as a JSON response."""
    body = json.dumps(value, separators=(",", ":"), default=str).encode()
    return Response(status, "application/json", body)


def write(request: BaseHTTPRequestHandler, response: Response) -> None:
    """Send ``response`` on ``request``'s connection (a HEAD gets no body)."""
    request.send_response(response.status)
    request.send_header("Content-Type", response.content_type)
    for name, value in {**SECURITY_HEADERS, **response.headers}.items():
        request.send_header(name, value)
    request.send_header("Content-Length", str(len(response.body)))
    request.end_headers()
    if request.command != "HEAD":
        request.wfile.write(response.body)
