"""A minimal Step Functions JSON-protocol endpoint over an ActivityService, for worker tests.

Only the activity operations; stands in for the API service until it exposes them.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from stepflow.activities import ActivityError, ActivityService

POLL_SECONDS = 0.5


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class SfnServer:
    """``poll_seconds`` (changeable) is GetActivityTask's wait; ``waiting`` counts polls in it."""

    def __init__(self, service: ActivityService, poll_seconds: float = POLL_SECONDS) -> None:
        self.poll_seconds = poll_seconds
        self.waiting = 0
        self.lock = lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                target = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
                length = int(self.headers.get("Content-Length", "0"))
                params: dict[str, Any] = json.loads(self.rfile.read(length) or b"{}")
                if target == "GetActivityTask":
                    params["waitSeconds"] = outer.poll_seconds
                try:
                    method = getattr(service, _snake(target))
                    if target == "GetActivityTask":
                        outer.waiting += 1
                        try:
                            body, code = method(params), 200
                        finally:
                            outer.waiting -= 1
                    else:
                        with lock:  # the harness's bus is not thread-safe
                            body, code = method(params), 200
                except ActivityError as exc:
                    body, code = exc.body(), exc.status
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> SfnServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
