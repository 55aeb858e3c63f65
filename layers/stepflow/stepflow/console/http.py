"""A whole HTTP response, and writing one to a ``BaseHTTPRequestHandler``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
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


def json_response(status: int, value: Any, headers: dict[str, str] | None = None) -> Response:
    """``value`` as a JSON response; dates as epoch seconds, as the Step Functions API sends."""
    body = json.dumps(value, separators=(",", ":"), default=_epoch).encode()
    return Response(status, "application/json", body, headers or {})


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"{type(value).__name__} is not JSON")


def write(request: BaseHTTPRequestHandler, response: Response) -> None:
    """Send ``response`` on ``request``'s connection."""
    request.send_response(response.status)
    request.send_header("Content-Type", response.content_type)
    for name, value in {**SECURITY_HEADERS, **response.headers}.items():
        request.send_header(name, value)
    request.send_header("Content-Length", str(len(response.body)))
    if request.close_connection:
        request.send_header("Connection", "close")
    request.end_headers()
    request.wfile.write(response.body)
