"""The signing proxy's HTTP server: a thread per connection, a bounded number of them."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_BUSY = json.dumps(
    {"__type": "ServiceUnavailable", "message": "the proxy is serving too many connections"}
).encode()


class BoundedServer(ThreadingHTTPServer):
    """A thread per connection, at most ``slots`` at once; the next ones get 503 and close.

    A refusal runs in its own short-lived thread (bounded too, by ``slots``) so
    that it can read the request first: closing a socket with unread data
    resets it, and the client would never see the 503.
    """

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], slots: int
    ) -> None:
        self._slots = threading.BoundedSemaphore(slots)
        self._refusals = threading.BoundedSemaphore(slots)
        self.busy = 0
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve ``request`` in a new thread if a slot is free, else answer 503."""
        if self._slots.acquire(blocking=False):
            try:
                super().process_request(request, client_address)
            except BaseException:
                self._slots.release()
                raise
            return
        self.busy += 1
        if not self._refusals.acquire(blocking=False):
            self.shutdown_request(request)
            return
        threading.Thread(target=self._refuse, args=(request,), daemon=True).start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Serve ``request`` (in its thread), then free its slot."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: socket.socket) -> None:
        try:
            request.settimeout(2.0)
            request.recv(64 * 1024)
            request.sendall(
                b"HTTP/1.1 503 Service Unavailable\r\n"
                b"Content-Type: application/x-amz-json-1.0\r\n"
                b"x-amzn-ErrorType: ServiceUnavailable\r\nRetry-After: 1\r\n"
                + f"Content-Length: {len(_BUSY)}\r\nConnection: close\r\n\r\n".encode()
                + _BUSY
            )
        except OSError:
            pass
        finally:
            self.shutdown_request(request)
            self._refusals.release()
