"""A Lambda Invoke endpoint in a thread: Python functions behind Lambda's HTTP API.

moto's Lambda needs Docker to run code; this endpoint answers boto3's
``Invoke`` (``POST /2015-03-31/functions/NAME/invocations``) by calling a
Python function on the request body, and records every body it received, so
a test can count invocations and see the exact bytes StepFlow sent. A body
that is not JSON is refused as Lambda refuses it
(``InvalidRequestContentException``, 400).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

PREFIX = "/2015-03-31/functions/"


class LambdaEndpoint:
    """The functions by name, and the ``(name, body)`` of every invocation received."""

    def __init__(self, functions: dict[str, Callable[[Any], Any]]) -> None:
        self.functions = functions
        self.calls: list[tuple[str, bytes]] = []
        self.url = ""
        self._lock = threading.Lock()

    def bodies(self, name: str) -> list[bytes]:
        """The bodies ``name`` was invoked with, in order."""
        with self._lock:
            return [body for called, body in self.calls if called == name]

    def answer(self, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if not path.startswith(PREFIX) or not path.endswith("/invocations"):
            return 404, {"x-amzn-ErrorType": "ResourceNotFoundException"}, b"{}"
        reference = unquote(path[len(PREFIX) : -len("/invocations")])
        name = reference.split(":function:")[-1].split(":")[0]
        with self._lock:
            self.calls.append((name, body))
        function = self.functions.get(name)
        if function is None:
            message = {"Type": "User", "message": f"Function not found: {reference}"}
            return 404, {"x-amzn-ErrorType": "ResourceNotFoundException"}, _dumps(message)
        try:
            event = json.loads(body)
        except ValueError as exc:
            message = {"Type": "User", "message": f"Could not parse request body into json: {exc}"}
            return 400, {"x-amzn-ErrorType": "InvalidRequestContentException"}, _dumps(message)
        try:
            return 200, {"X-Amz-Executed-Version": "$LATEST"}, _dumps(function(event))
        except Exception as exc:  # the function's error, as Lambda reports it
            error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            headers = {"X-Amz-Executed-Version": "$LATEST", "X-Amz-Function-Error": "Unhandled"}
            return 200, headers, _dumps(error)


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


@contextmanager
def lambda_endpoint(functions: dict[str, Callable[[Any], Any]]) -> Iterator[LambdaEndpoint]:
    """A running :class:`LambdaEndpoint` on a free local port (``url``)."""
    endpoint = LambdaEndpoint(functions)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            status, headers, body = endpoint.answer(self.path, self.rfile.read(length))
            self.send_response(status)
            for key, value in {**headers, "Content-Type": "application/json"}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
