"""The built-in handler of :class:`~stepflow.cells.builtin.HttpRequest`: httpx, guarded.

Every request carries ``Idempotency-Key: <call.key.token>`` (the same on every
retry and every re-run of the attempt; a key the cell sets itself is kept), so
a target that honours the header performs it once. Nothing else is added.

What the HTTP Task integration refuses, this refuses too, with the same
checks (:func:`~stepflow.integrations.http_port.checked`,
:class:`~stepflow.integrations.http_denied.DeniedEndpoints`,
:func:`~stepflow.integrations.http_port.connection_refusal`): a non-http(s) URL, a
link-local address (instance metadata), CR/LF/NUL in a header, a header that
frames the request (``Host``, ``Content-Length``, ``Transfer-Encoding``...), the stack's own
AWS endpoints (by the URL's host before connecting, and by the peer's address
once connected, whatever spelling or DNS answer led there), and this machine
unless ``allow_loopback``. The peer is checked in httpcore's network backend,
before a byte is sent. Redirects are never followed, environment proxies
never used (a proxy would hide the peer).

The call's time limit (``call.timeout``, from the handler's policy, capped by
the effect's ``timeout``) is httpx's connect/read/write/pool timeout, and also
bounds the whole body read: past it the call raises
:class:`~stepflow.cells.policy.EffectTimeout`. The body is read in chunks and
abandoned past the effect's ``max_response_bytes``.

A failure says whether the request may have been performed (recorded with it, see
:mod:`stepflow.cells.handlers`): ``no`` when it was refused before anything was sent
(a refused request, no connection made, a connect timeout, a 4xx answer),
``unknown`` when the connection broke or timed out after it was sent or the answer
was 5xx, ``yes`` when a success answered with a body that is too large or not JSON.

A failure's cause names the request by :func:`redacted_url` (no userinfo, no
query values): causes are recorded in the journal and the execution history.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpcore
import httpx

from stepflow.cells.builtin import HttpRequest, HttpResponse
from stepflow.cells.handlers import EffectCall, HandlerError
from stepflow.cells.policy import EffectTimeout, TransientError
from stepflow.integrations.http import FORBIDDEN_HEADERS
from stepflow.integrations.http_denied import DeniedEndpoints, endpoint_of
from stepflow.integrations.http_port import HttpProblem, checked, connection_refusal
from stepflow.integrations.http_port import HttpRequest as PortRequest

IDEMPOTENCY_HEADER = "Idempotency-Key"
REFUSED = "StepFlow.Effect.Http.Refused"
"""A request StepFlow will not send (a bad URL or header, a forbidden endpoint)."""
CONNECTION = "StepFlow.Effect.Http.Connection"
"""No response (connection refused or broken): transient."""
STATUS_PREFIX = "StepFlow.Effect.Http."
"""``StepFlow.Effect.Http.<status>``: a response of 400 or more."""
TOO_LARGE = "StepFlow.Effect.ResponseTooLarge"
INVALID_JSON = "StepFlow.Effect.Http.InvalidJson"
RETRIED_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
"""Statuses worth another attempt (the rest of 4xx/5xx fail the effect at once)."""
FRAMING_HEADERS = FORBIDDEN_HEADERS - {"authorization"}
"""The HTTP Task's forbidden headers but ``Authorization`` (no connection sets it for a cell)."""
DEFAULT_TIMEOUT_SECONDS = 10.0
"""A call's limit when neither the policy nor the effect gives one."""


def redacted_url(url: str) -> str:
    """``url`` as a failure's cause may show it: no userinfo, no query values, no fragment.

    Causes are recorded in the journal and the execution history, which more people
    read than the cell's code: ``https://user:secret@host/p?token=abc`` is shown as
    ``https://***@host/p?token=***``. The names of the query's parameters are kept.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<an invalid URL>"
    host = parts.netloc.rpartition("@")[2]
    netloc = f"***@{host}" if "@" in parts.netloc else host
    query = "&".join(
        f"{name}=***" if sep else name
        for name, sep, _ in (pair.partition("=") for pair in parts.query.split("&") if pair)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _hide(text: str, url: str) -> str:
    """``text`` with ``url`` shown redacted (a message of httpx or a check that quotes it)."""
    return text.replace(url, redacted_url(url)) if url else text


class _Refused(Exception):
    """A connection reached an address no effect may reach."""


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's sync backend, refusing a connection whose peer is forbidden."""

    def __init__(self, denied: DeniedEndpoints | None, allow_loopback: bool) -> None:
        self._inner = httpcore.SyncBackend()
        self._denied = denied
        self._allow_loopback = allow_loopback

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        """Connect, then check the address reached before anything is sent."""
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        sock = stream.get_extra_info("socket")
        peer = str(sock.getpeername()[0]) if sock is not None else ""
        refusal = connection_refusal(host, port, peer, self._denied, self._allow_loopback)
        if refusal is not None:
            stream.close()
            raise _Refused(refusal)
        return stream

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        """Never: effects reach TCP endpoints only."""
        raise _Refused("Unix sockets are not reachable through an HTTP effect")

    def sleep(self, seconds: float) -> None:
        """Httpcore's own (unused without retries)."""
        self._inner.sleep(seconds)


class _GuardedTransport(httpx.HTTPTransport):
    """httpx's transport on a connection pool over :class:`GuardedBackend`.

    httpx takes no network backend, so the pool it made is replaced by one
    made the same way with the guarded backend (httpcore's public API).
    """

    def __init__(self, backend: GuardedBackend) -> None:
        super().__init__(trust_env=False, retries=0)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=backend,
            retries=0,
        )


class EffectHttp:
    """Performs :class:`HttpRequest` effects (see the module docstring).

    ``denied`` are the stack's own endpoints (``stepflow local``);
    ``allow_loopback`` False refuses this machine (deployed: the Lambda runtime
    API listens on 127.0.0.1). ``transport`` replaces the network (tests).
    """

    def __init__(
        self,
        *,
        denied: DeniedEndpoints | None = None,
        allow_loopback: bool = True,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.denied = denied
        self.allow_loopback = allow_loopback
        self._transport = transport
        self._clock = clock
        self._lock = threading.Lock()
        self._made: httpx.Client | None = None

    @property
    def _client(self) -> httpx.Client:
        """The client, made on first use (its TLS context costs a read of the CA bundle)."""
        with self._lock:
            if self._made is None:
                transport = self._transport or _GuardedTransport(
                    GuardedBackend(self.denied, self.allow_loopback)
                )
                self._made = httpx.Client(
                    transport=transport, follow_redirects=False, trust_env=False
                )
            return self._made

    def __call__(self, effect: HttpRequest, call: EffectCall) -> HttpResponse:
        """Send ``effect`` once; its response, or the failure named (module docstring)."""
        limit = min(call.timeout or DEFAULT_TIMEOUT_SECONDS, effect.timeout or float("inf"))
        headers = dict(effect.headers)
        if not any(name.lower() == IDEMPOTENCY_HEADER.lower() for name in headers):
            headers[IDEMPOTENCY_HEADER] = call.key.token
        if not any(name.lower() == "accept-encoding" for name in headers):
            headers["Accept-Encoding"] = "identity"  # the size bound counts what is kept
        self._check(effect, headers, limit)
        content: bytes | None = None
        if effect.json_body is not None:
            content = json.dumps(effect.json_body, separators=(",", ":")).encode()
            if not any(name.lower() == "content-type" for name in headers):
                headers["Content-Type"] = "application/json"
        elif effect.body is not None:
            content = effect.body.encode()
        deadline = self._clock() + limit
        shown = redacted_url(effect.url)
        try:
            with self._client.stream(
                effect.method,
                effect.url,
                headers=headers,
                content=content,
                timeout=httpx.Timeout(limit),
            ) as response:
                body = self._read(response, effect.max_response_bytes, deadline, limit)
        except _Refused as refused:
            raise HandlerError(REFUSED, _hide(str(refused), effect.url)) from refused
        except httpx.TimeoutException as exc:
            raise EffectTimeout(
                f"{effect.method} {shown}: no answer in {limit} s", _sent(exc)
            ) from exc
        except httpx.TransportError as exc:
            cause = f"{effect.method} {shown}: {_hide(str(exc), effect.url)}"
            raise TransientError(CONNECTION, cause, _sent(exc)) from exc
        return self._response(effect, response, body)

    def _check(self, effect: HttpRequest, headers: dict[str, str], limit: float) -> None:
        framing = sorted(name for name in headers if name.lower() in FRAMING_HEADERS)
        if framing:
            raise HandlerError(REFUSED, f"An HTTP effect may not set the headers {framing}")
        try:
            checked(PortRequest(effect.method, effect.url, tuple(headers.items()), None, limit))
        except HttpProblem as problem:
            raise HandlerError(REFUSED, _hide(problem.message, effect.url)) from problem
        endpoint = endpoint_of(effect.url)
        if self.denied is not None and endpoint is not None:
            refusal = self.denied.refusal(*endpoint)
            if refusal is not None:
                raise HandlerError(REFUSED, refusal)

    def _read(self, response: httpx.Response, most: int, deadline: float, limit: float) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes(65536):
            size += len(chunk)
            if size > most:
                raise HandlerError(
                    TOO_LARGE,
                    f"The response body is larger than {most} bytes (max_response_bytes); "
                    "it was not read further nor recorded.",
                    _answered(response.status_code),
                )
            chunks.append(chunk)
            if self._clock() > deadline:
                raise EffectTimeout(
                    f"The response body did not arrive within {limit} s",
                    _answered(response.status_code),
                )
        return b"".join(chunks)

    def _response(self, effect: HttpRequest, response: httpx.Response, body: bytes) -> HttpResponse:
        text = body.decode("utf-8", errors="replace")
        status = response.status_code
        if effect.fail_on_status and status >= 400:
            cause = f"{effect.method} {redacted_url(effect.url)} answered {status}: {text[:1000]}"
            error = f"{STATUS_PREFIX}{status}"
            if status in RETRIED_STATUSES:
                raise TransientError(error, cause, _answered(status))
            raise HandlerError(error, cause, _answered(status))
        headers: dict[str, str] = {}
        for name, value in response.headers.multi_items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        parsed: Any = None
        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if body and (content_type == "application/json" or content_type.endswith("+json")):
            try:
                parsed = json.loads(text)
            except ValueError as exc:
                raise HandlerError(
                    INVALID_JSON,
                    f"{effect.method} {redacted_url(effect.url)} answered {content_type} that is "
                    f"not JSON: {exc}",
                    _answered(status),
                ) from exc
        return HttpResponse(status=status, headers=headers, body=text, json_body=parsed)

    def close(self) -> None:
        """Close the connection pool (if it was made)."""
        with self._lock:
            made, self._made = self._made, None
        if made is not None:
            made.close()


def _sent(exc: httpx.TransportError) -> str:
    """Whether a request that got no answer may have been performed: ``no`` or ``unknown``.

    A connection that was never made (refused, a connect or pool timeout) sent nothing.
    """
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return "no"
    return "unknown"


def _answered(status: int) -> str:
    """Whether an answered request was performed: a 4xx refused it, a 5xx may not have."""
    if status < 400:
        return "yes"
    return "no" if status < 500 else "unknown"
