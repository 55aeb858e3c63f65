"""The one HTTP port of the HTTP integrations (``apigateway:invoke``, ``http:invoke``).

:class:`HttpPort` sends one request and returns one response, never following
a redirect (a 3xx comes back as the response: a redirect to another host is
never taken silently) and never retrying (one request per task attempt).
:class:`Urllib3Http` is the real one (urllib3 ships with botocore),
:class:`MemoryHttp` its in-memory twin for tests. :func:`checked` refuses what
must never reach the wire: a non-http(s) URL, a link-local address (the
instance metadata service), a method or header that could split the request
(CR, LF or NUL). Once connected, :class:`Urllib3Http` checks the peer's address
(whatever name or numeric spelling led there): never a link-local one, and
never this machine unless ``allow_loopback`` (``stepflow local`` and tests; a
deployed runner must not reach, e.g., the Lambda runtime API on 127.0.0.1).
Given :class:`~stepflow.integrations.http_denied.DeniedEndpoints`, it also
refuses the stack's own AWS endpoints, by the URL's host before connecting and
by the peer's address once connected.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from stepflow.integrations.http_denied import DeniedEndpoints, address_of, endpoint_of, is_this_host

DEFAULT_TIMEOUT_SECONDS = 60.0
"""A request's time limit when the task sets none (AWS's HTTP Task limit is 60 s)."""

MAX_BODY_BYTES = 16 * 1024 * 1024
"""The most of a response body read; a larger one fails the task (``States.DataLimitExceeded``).

Well above any payload limit a task result may have without the S3 offload:
smaller bodies are read whole and the runtime's payload check decides.
"""

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
"""An HTTP token (RFC 9110): a method or header name."""
_UNSAFE = re.compile(r"[\r\n\x00]")


class HttpProblem(Exception):
    """The request could not be made or answered; ``kind`` says why.

    ``invalid`` (refused before sending), ``timeout``, ``too_large`` (the body
    passed :data:`MAX_BODY_BYTES`) or ``connection``.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One HTTP request; ``timeout`` in seconds bounds the whole exchange."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """One HTTP response: status, reason phrase, headers in order (repeats kept), body."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), None if absent."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)


class HttpPort(Protocol):
    """Sends one request (no redirects followed, no retries)."""

    def send(self, request: HttpRequest) -> HttpResponse:
        """The response to ``request``; raises :class:`HttpProblem` when there is none."""
        ...


def checked(request: HttpRequest) -> HttpRequest:
    """``request`` if it is safe to send, else :class:`HttpProblem` (``invalid``)."""
    parts = urlsplit(request.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpProblem("invalid", f"The endpoint {request.url!r} is not an http(s) URL")
    if _link_local(parts.hostname):
        raise HttpProblem(
            "invalid", f"The endpoint {parts.hostname!r} is link-local (instance metadata)"
        )
    if _UNSAFE.search(request.url) or any(ord(c) < 0x21 for c in request.url):
        raise HttpProblem("invalid", "The URL contains whitespace or control characters")
    if not _TOKEN.fullmatch(request.method):
        raise HttpProblem("invalid", f"The method {request.method!r} is not a valid HTTP method")
    for name, value in request.headers:
        if not _TOKEN.fullmatch(name):
            raise HttpProblem("invalid", f"The header name {name!r} is not a valid HTTP token")
        if _UNSAFE.search(value):
            raise HttpProblem("invalid", f"The value of the header {name!r} contains CR, LF or NUL")
    if request.timeout <= 0:
        raise HttpProblem("invalid", "The request's timeout must be positive")
    return request


METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(text) for text in ("fd00:ec2::254", "fd00:ec2::23")
)
"""Metadata and credential endpoints that are not link-local: EC2 instance metadata and
the EKS Pod Identity agent over IPv6 (their IPv4 addresses, 169.254.169.254 and
169.254.170.23, are link-local, as is ECS's 169.254.170.2)."""


def _is_metadata(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_link_local or address in METADATA_ADDRESSES


def _link_local(host: str) -> bool:
    """Whether ``host`` is a link-local or metadata IP literal (see :data:`METADATA_ADDRESSES`)."""
    address = address_of(host)
    return address is not None and _is_metadata(address)


class Urllib3Http:
    """:class:`HttpPort` over a urllib3 pool: no redirects, no retries, bounded in time and size.

    The whole exchange (connect, send, every read) must end within the
    request's ``timeout``; the body is read in chunks and abandoned past
    ``max_body_bytes``. A request to one of ``denied`` is refused
    (``invalid``) before connecting and, should the name resolve elsewhere by
    then, once connected. A connection that reached a link-local address, or
    this machine without ``allow_loopback``, is refused too.

    With ``read_body=False`` (webhooks) only the status line and headers are
    read: the body is never waited for (the response's ``body`` is empty and the
    connection is closed), so a slow or endless body cannot outlast the timeout
    or turn an answered request into a failure. HTTP tasks read the body.
    """

    def __init__(
        self,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        clock: Callable[[], float] = time.monotonic,
        denied: DeniedEndpoints | None = None,
        allow_loopback: bool = True,
        read_body: bool = True,
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self.read_body = read_body
        self.denied = denied
        self.allow_loopback = allow_loopback
        self._clock = clock
        self._pool = urllib3.PoolManager(retries=False)
        self._pool.pool_classes_by_scheme = _guarded_pools(denied, allow_loopback)

    def send(self, request: HttpRequest) -> HttpResponse:
        """Send ``request`` once (see :class:`HttpPort`)."""
        checked(request)
        endpoint = endpoint_of(request.url)
        if self.denied is not None and endpoint is not None:
            refusal = self.denied.refusal(*endpoint)
            if refusal is not None:
                raise HttpProblem("invalid", refusal)
        deadline = self._clock() + request.timeout
        headers = urllib3.HTTPHeaderDict()
        for name, value in request.headers:
            headers.add(name, value)
        try:
            response = self._pool.request(
                request.method,
                request.url,
                body=request.body,
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
                timeout=urllib3.Timeout(connect=request.timeout, read=request.timeout),
            )
            if not self.read_body:
                response.close()  # the body is not waited for: the connection is not reused
                body = b""
            else:
                try:
                    body = self._read(response, deadline)
                finally:
                    response.release_conn()
        except urllib3.exceptions.TimeoutError as exc:
            raise HttpProblem("timeout", f"The request timed out: {exc}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise HttpProblem("connection", f"The request failed: {exc}") from exc
        except OSError as exc:
            raise HttpProblem("connection", f"The request failed: {exc}") from exc
        return HttpResponse(
            response.status, response.reason or "", tuple(response.headers.iteritems()), body
        )

    def _read(self, response: urllib3.BaseHTTPResponse, deadline: float) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            if self._clock() > deadline:
                raise HttpProblem("timeout", "The response did not arrive within the timeout")
            chunk = response.read(65536)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_body_bytes:
                raise HttpProblem(
                    "too_large",
                    f"The response body is larger than {self.max_body_bytes} bytes",
                )
            chunks.append(chunk)


def peer_refusal(peer: str, allow_loopback: bool) -> str | None:
    """Why a connection to the address ``peer`` must not be used (None: it may)."""
    address = address_of(peer)
    if address is None:
        return None
    if _is_metadata(address):
        return f"The endpoint reached {peer}, a link-local address (instance metadata)"
    if not allow_loopback and is_this_host(address):
        return f"The endpoint reached {peer}, an address of this machine"
    return None


def connection_refusal(
    host: str, port: int, peer: str, denied: DeniedEndpoints | None, allow_loopback: bool
) -> str | None:
    """Why a connection to ``host:port`` that reached ``peer`` must not be used (None: it may).

    :func:`peer_refusal`, then the stack's own endpoints (``denied``).
    """
    refusal = peer_refusal(peer, allow_loopback)
    if refusal is None and denied is not None:
        refusal = denied.refusal(host, port, peer)
    return refusal


def _guarded_pools(
    denied: DeniedEndpoints | None, allow_loopback: bool
) -> dict[str, type[HTTPConnectionPool]]:
    """urllib3 pools whose connections check the peer reached (:func:`connection_refusal`)."""

    def check(connection: HTTPConnection, sock: socket.socket) -> socket.socket:
        peer = str(sock.getpeername()[0])
        refusal = connection_refusal(connection.host, connection.port, peer, denied, allow_loopback)
        if refusal is not None:
            sock.close()
            raise HttpProblem("invalid", refusal)
        return sock

    class Connection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return check(self, super()._new_conn())

    class SecureConnection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return check(self, super()._new_conn())

    class Pool(HTTPConnectionPool):
        ConnectionCls = Connection

    class SecurePool(HTTPSConnectionPool):
        ConnectionCls = SecureConnection

    return {"http": Pool, "https": SecurePool}


Route = Callable[[HttpRequest], HttpResponse]


@dataclass(slots=True)
class MemoryHttp:
    """The in-memory twin of :class:`Urllib3Http`: answers from ``routes`` by URL prefix.

    Every request sent is recorded in ``sent`` (after the same safety check);
    a URL no route matches gets a connection problem, as an unreachable host would.
    """

    routes: dict[str, Route] = field(default_factory=dict)
    sent: list[HttpRequest] = field(default_factory=list)

    def send(self, request: HttpRequest) -> HttpResponse:
        """Answer ``request`` from the longest matching route."""
        checked(request)
        self.sent.append(request)
        matches = [prefix for prefix in self.routes if request.url.startswith(prefix)]
        if not matches:
            raise HttpProblem("connection", f"No route to {request.url}")
        return self.routes[max(matches, key=len)](request)
