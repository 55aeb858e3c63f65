"""A real local HTTP server as the target of the HTTP integrations: records every request."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Received:
    """One request the target received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


Reply = tuple[int, list[tuple[str, str]], bytes]
Route = Callable[[Received], Reply]


def json_reply(status: int, value: Any) -> Reply:
    body = json.dumps(value).encode()
    return status, [("Content-Type", "application/json")], body


def _echo(req: Received) -> Reply:
    """The body back as is, as a JSON response (the AWS tests' ``id_func``)."""
    return 200, [("Content-Type", "application/json")], req.body


def _status(req: Received) -> Reply:
    code = int(req.path.rsplit("/", 1)[1])
    return json_reply(code, {"message": "Missing Authentication Token"})


def _huge(req: Received) -> Reply:
    size = int(req.path.rsplit("/", 1)[1])
    return json_reply(200, {"blob": "x" * size})


def _slow(req: Received) -> Reply:
    time.sleep(float(req.path.rsplit("/", 1)[1]))
    return json_reply(200, {"late": True})


def _text(req: Received) -> Reply:
    return 200, [("Content-Type", "text/plain")], b"not json {"


def _redirect(req: Received) -> Reply:
    """To another host name of this server: a followed redirect would show as a ``landing``."""
    port = (req.header("Host") or "").rsplit(":", 1)[-1]
    return 302, [("Location", f"http://localhost:{port}/landing")], b""


def _landing(req: Received) -> Reply:
    return json_reply(200, {"redirected": True})


def _inspect(req: Received) -> Reply:
    body: Any = req.body.decode()
    with suppress(ValueError):
        body = json.loads(body)
    return json_reply(
        200,
        {
            "method": req.method,
            "query": req.query,
            "headers": {k.lower(): v for k, v in req.headers},
            "body": body,
        },
    )


def _token(req: Received) -> Reply:
    return json_reply(200, {"access_token": "tok-123", "token_type": "bearer"})


DEFAULT_ROUTES: dict[str, Route] = {
    "id_func": _echo,
    "status": _status,
    "huge": _huge,
    "slow": _slow,
    "text": _text,
    "redirect": _redirect,
    "landing": _landing,
    "inspect": _inspect,
    "token": _token,
}
"""By the path's first segment after the stage (``/<stage>/<route>/...``) or the first one."""


@dataclass
class HttpTarget:
    """The running server: ``url`` (``http://127.0.0.1:<port>``) and every request it received."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)
    """The paths answered so far (a route that is still working is not yet here)."""
    routes: dict[str, Route] = field(default_factory=lambda: dict(DEFAULT_ROUTES))
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    def count(self, route: str) -> int:
        with self.lock:
            return sum(1 for r in self.received if f"/{route}" in r.path)

    def answer(self, req: Received) -> Reply:
        with self.lock:
            self.received.append(req)
        # API Gateway's answer to a path it does not know.
        reply = json_reply(403, {"message": "Missing Authentication Token"})
        for segment in req.path.strip("/").split("/"):
            if segment in self.routes:
                reply = self.routes[segment](req)
                break
        with self.lock:
            self.answered.append(req.path)
        return reply


@contextmanager
def http_target() -> Iterator[HttpTarget]:
    """A started target on a free local port (stopped on exit)."""
    target = HttpTarget()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            req = Received(
                self.command, parts.path, parse_qs(parts.query), list(self.headers.items()), body
            )
            status, headers, payload = target.answer(req)
            try:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    target.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield target
    finally:
        server.shutdown()
        server.server_close()
