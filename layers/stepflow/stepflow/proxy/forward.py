"""A local HTTP server that forwards each request to a deployed API, re-signed.

The AWS CLI, SDKs and Terraform sign for ``states`` with whatever credentials
they hold; API Gateway's IAM authorization wants ``execute-api``. The
:class:`Forwarder` keeps only the JSON protocol's headers (not the client's
signature), adds the API's stage path, signs with the proxy process's
credentials (botocore's chain) and streams the answer back; the server forwards
only ``POST /`` requests that no other server could read differently
(:mod:`stepflow.proxy.checks`). Bodies and credentials are never logged; each request is logged
as one line: method, path, X-Amz-Target, status.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from stepflow.local.hosts import HostGuard, is_loopback
from stepflow.local.routes import Route, route_for
from stepflow.proxy.bounded import BoundedServer
from stepflow.proxy.checks import (
    FORWARDED_HEADERS,
    FORWARDED_PATH,
    header_problem,
    target_problem,
)
from stepflow.proxy.signing import sign_request

MAX_BODY = 10 * 1024 * 1024
"""API Gateway's payload limit: a larger request is refused with 413 before it is read."""

UPSTREAM_TIMEOUT = 75.0
"""Seconds an upstream call may stay silent (GetActivityTask long-polls for 60 s)."""

_CHUNK = 64 * 1024

HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "trailers", "transfer-encoding", "upgrade", "expect",
    }
)  # fmt: skip
"""Headers about one connection, never passed back to the client."""

READ_TIMEOUT = 30.0
"""Seconds a client may stay silent while the proxy waits for its request (then 408 or close)."""

REQUEST_DEADLINE = 60.0
"""Seconds a client has to send a whole request, headers and body (a trickle gets 408)."""

MAX_CONNECTIONS = 32
"""Connections served at once (a thread and up to :data:`MAX_BODY` each); past it, 503."""

Credentials = Callable[[], Any]
"""Returns botocore's frozen credentials (None: there are none); may raise if a refresh fails."""

Log = Callable[[str], None]


class ProxyError(Exception):
    """A request the proxy answers itself: ``status`` and a JSON-protocol error ``kind``."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind = status, kind


def _late() -> ProxyError:
    """A request whose deadline passed before it was whole."""
    return ProxyError(408, "RequestTimeout", "the request did not arrive in time")


@dataclass(frozen=True)
class Upstream:
    """The deployed API: ``https://<id>.execute-api.<region>.amazonaws.com/<stage>/``."""

    scheme: str
    host: str
    port: int
    base_path: str
    """The stage path, without its trailing slash (``/v1``), or empty."""

    @classmethod
    def parse(cls, api_url: str) -> Upstream:
        """Parse ``api_url``; ValueError unless it is an absolute http(s) URL without a query."""
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{api_url!r} is not an http(s) URL (the stack's ApiUrl output)")
        if parts.query or parts.fragment:
            raise ValueError(f"{api_url!r} has a query or fragment; give the API's base URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    def target(self, path: str) -> str:
        """The upstream request target of a request for ``path`` (``/`` -> ``<base>/``)."""
        return self.base_path + (path if path.startswith("/") else "/" + path)

    def url(self, path: str) -> str:
        """The upstream URL of a request for ``path``."""
        default = 443 if self.scheme == "https" else 80
        netloc = self.host if self.port == default else f"{self.host}:{self.port}"
        return f"{self.scheme}://{netloc}{self.target(path)}"


@dataclass
class Forwarder:
    """Re-signs and forwards requests to ``upstream``; counts them in ``forwarded``."""

    upstream: Upstream
    region: str
    credentials: Credentials
    timeout: float = UPSTREAM_TIMEOUT
    forwarded: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def open(
        self, method: str, path: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send the request upstream; the caller reads the response and closes the connection.

        Raises :class:`ProxyError`: 400 for a path with a dot segment or not
        origin-form, 403 without credentials, 502 when the API cannot be
        reached, 504 when it does not answer in time.
        """
        problem = target_problem(path)
        if problem is not None:  # the signer would normalise it into another path
            raise ProxyError(400, "BadRequest", f"refused: {problem}")
        try:
            frozen = self.credentials()
        except Exception as exc:  # an expired SSO session, an unreachable IMDS...
            raise ProxyError(
                403, "ProxyCredentialsUnavailable", f"the proxy's AWS credentials: {exc}"
            ) from None
        if frozen is None:
            raise ProxyError(403, "ProxyCredentialsUnavailable", NO_CREDENTIALS)
        url = self.upstream.url(path)
        kept = {k: v for k, v in headers if k.lower() in FORWARDED_HEADERS}
        signed = sign_request(frozen, self.region, method, url, kept, body)
        connection = self._connection()
        try:
            connection.request(method, self.upstream.target(path), body=body, headers=signed)
            response = connection.getresponse()
        except TimeoutError:
            connection.close()
            raise ProxyError(
                504, "GatewayTimeout", f"{self.upstream.host} did not answer in time"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise ProxyError(
                502, "BadGateway", f"cannot reach {self.upstream.host}: {type(exc).__name__}"
            ) from None
        with self._lock:
            self.forwarded += 1
        return connection, response

    def _connection(self) -> http.client.HTTPConnection:
        if self.upstream.scheme == "https":
            return http.client.HTTPSConnection(
                self.upstream.host,
                self.upstream.port,
                timeout=self.timeout,
                context=ssl.create_default_context(),
            )
        return http.client.HTTPConnection(
            self.upstream.host, self.upstream.port, timeout=self.timeout
        )


NO_CREDENTIALS = (
    "no AWS credentials found (environment, AWS_PROFILE or --profile, SSO, instance role): "
    "run `aws configure` or `aws sso login`, or pass --profile"
)


class ProxyServer:
    """Serves ``forwarder`` on ``host:port`` (port 0: any free port), a thread per connection.

    ``routes`` answer their own ``GET`` requests (the web console's files);
    ``POST /`` is forwarded; anything else is refused (400). A non-loopback
    ``host`` is refused unless ``allow_remote``: whoever reaches the port calls
    the API as the proxy's user. At most ``max_connections`` are served at once
    (past them: 503), each waiting at most ``read_timeout`` seconds on its client
    for each read and ``request_deadline`` seconds for a whole request.
    """

    def __init__(
        self,
        forwarder: Forwarder,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        allow_remote: bool = False,
        routes: Sequence[Route] = (),
        log: Log | None = None,
        max_connections: int = MAX_CONNECTIONS,
        read_timeout: float = READ_TIMEOUT,
        request_deadline: float = REQUEST_DEADLINE,
    ) -> None:
        if not allow_remote and not is_loopback(host):
            raise ValueError(f"refusing to listen on {host!r}: not a loopback address")
        self.forwarder = forwarder
        self._guard = [HostGuard(frozenset())]  # set once the port is known
        handler = _handler_class(forwarder, tuple(routes), log or (lambda _line: None), self._guard)
        handler.timeout = read_timeout
        handler.request_deadline = request_deadline  # type: ignore[attr-defined]
        self._server = BoundedServer((host, port), handler, max_connections)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._serving = False
        self.port = int(self._server.server_address[1])
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}"
        # A web page cannot reach the proxy by DNS rebinding nor post to it from elsewhere.
        self._guard[0] = HostGuard.for_server(host, self.port)

    @property
    def refused_busy(self) -> int:
        """Connections answered 503 because ``max_connections`` were being served."""
        return self._server.busy

    def start(self) -> ProxyServer:
        """Serve in a background thread."""
        self._serving = True
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until :meth:`stop` (or KeyboardInterrupt)."""
        self._serving = True
        self._server.serve_forever()

    def stop(self) -> None:
        """Stop serving (if serving) and close the socket."""
        if self._serving:
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ProxyServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _handler_class(
    forwarder: Forwarder, routes: tuple[Route, ...], log: Log, guard: list[HostGuard]
) -> type[BaseHTTPRequestHandler]:
    """The request handler; ``guard[0]`` refuses rebound and cross-origin requests."""

    class _Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        request_deadline = REQUEST_DEADLINE
        _watchdog: threading.Timer | None = None
        _expired = False

        def handle_one_request(self) -> None:
            # The socket's timeout bounds each read; this bounds the whole request from its
            # first byte, so a client trickling a byte per read cannot hold a slot for ever.
            with contextlib.suppress(OSError, ValueError):  # idle keep-alive: not yet a request
                self.rfile.peek(1)  # type: ignore[attr-defined]
            self._watchdog = threading.Timer(self.request_deadline, self._stop_reading)
            self._watchdog.daemon = True
            self._watchdog.start()
            try:
                super().handle_one_request()
            finally:
                self._read()

        def _stop_reading(self) -> None:
            """The deadline passed: reads see the end of the stream (a reply may still go out)."""
            self._expired = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RD)

        def _read(self) -> None:
            """The request is read (or abandoned): the deadline no longer applies."""
            if self._watchdog is not None:
                self._watchdog.cancel()
                self._watchdog = None

        def _forward(self) -> None:
            shown = self.path.split("?", 1)[0][:200]
            if self._expired:  # headers cut short by the deadline: not a request to judge
                self.close_connection = True
                self._refuse(_late())
                log(f"{self.command} {shown!r} refused: the request's deadline passed")
                return
            problem = header_problem(self.headers) or target_problem(self.path)
            if problem is not None:
                self.close_connection = True  # what follows on this connection is unknowable
                self._refuse(ProxyError(400, "BadRequest", f"refused: {problem}"))
                log(f"{self.command} {shown!r} refused: {problem}")
                return
            if guard[0].refuses(self.headers.get("Host"), self.headers.get("Origin")):
                self.close_connection = True
                self._refuse(
                    ProxyError(403, "Forbidden", "not a request from this machine's own origin")
                )
                log(f"{self.command} {shown} refused: Host or Origin 403")
                return
            route = route_for(routes, self.command, self.path)
            if route is not None:
                self._read()  # a route's GET has no body; it may stream for long
                route.serve(self)
                return
            target = self.headers.get("X-Amz-Target", "-")
            try:
                if (self.command, self.path) != ("POST", FORWARDED_PATH):
                    self.close_connection = True
                    raise ProxyError(
                        400, "BadRequest", "the proxy forwards POST / only (the JSON protocol)"
                    )
                body = self._body()
                self._read()
                if self._expired:  # cut short by the deadline: what arrived is not the request
                    self.close_connection = True
                    raise _late()
                status = self._relay(body)
            except ProxyError as exc:
                status = exc.status
                self._refuse(exc)
            log(f"{self.command} {shown} {target} {status}")

        def _body(self) -> bytes:
            header = (self.headers.get("Content-Length") or "0").strip()
            length = int(header) if header.isascii() and header.isdigit() else -1
            if length > MAX_BODY:  # refused unread, as API Gateway does
                self.close_connection = True
                raise ProxyError(413, "RequestEntityTooLarge", f"the body is over {MAX_BODY} bytes")
            if length < 0:
                self.close_connection = True
                raise ProxyError(400, "BadRequest", "malformed Content-Length")
            try:
                body = self.rfile.read(length)
            except TimeoutError:
                body = b""
            if len(body) < length:
                self.close_connection = True
                raise ProxyError(408, "RequestTimeout", "the body did not arrive in time")
            return body

        def _relay(self, body: bytes) -> int:
            connection, response = forwarder.open(
                self.command, self.path, list(self.headers.items()), body
            )
            try:
                self.send_response(response.status, response.reason)
                length = response.getheader("Content-Length")
                for name, value in response.getheaders():
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                if length is None:  # no length to pass on: the body ends when we close
                    self.close_connection = True
                    self.send_header("Connection", "close")
                self.end_headers()
                while chunk := response.read(_CHUNK):
                    self.wfile.write(chunk)
                return response.status
            except (TimeoutError, OSError, http.client.HTTPException):
                self.close_connection = True  # headers may be out: only closing can tell
                return 502
            finally:
                connection.close()

        def _refuse(self, error: ProxyError) -> None:
            body = json.dumps({"__type": error.kind, "message": str(error)}).encode()
            self.send_response(error.status)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("x-amzn-ErrorType", error.kind)
            self.send_header("Content-Length", str(len(body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward  # noqa: N815 (http.server's)

        def log_message(self, format: str, *args: Any) -> None:
            """Silenced: :func:`log` gets one line per request, without bodies."""

    return _Forward
