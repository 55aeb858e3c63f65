"""An in-process HTTP server acting as API Gateway: requests become REST proxy events."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

from stepflow.api import lambda_handler

CONTEXT = SimpleNamespace(
    function_name="stepflow-api",
    memory_limit_in_mb=256,
    invoked_function_arn="arn:aws:lambda:eu-west-1:111122223333:function:stepflow-api",
    aws_request_id="req",
)


class _ProxyHandler(BaseHTTPRequestHandler):
    def _proxy(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        event: dict[str, Any] = {
            "httpMethod": self.command,
            "path": self.path,
            "headers": dict(self.headers.items()),
            "body": self.rfile.read(length).decode("utf-8", "replace"),
            "isBase64Encoded": False,
        }
        response = lambda_handler.handler(event, CONTEXT)
        body = response["body"].encode()
        self.send_response(response["statusCode"])
        for name, value in response["headers"].items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET = do_PUT = _proxy  # noqa: N815 (http.server's naming)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve() -> Iterator[str]:
    """Serve the API Lambda on a free local port; yields the endpoint URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
