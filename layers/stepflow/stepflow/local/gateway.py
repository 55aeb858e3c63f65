"""An HTTP server acting as API Gateway: each request becomes a REST proxy event.

The caller: API Gateway with IAM auth puts the signer's principal in
``requestContext.identity``. ``stepflow local`` has no IAM and verifies no
signature; it takes the access key of the SigV4 ``Authorization`` header
(``Credential=<access key>/<date>/...``) and maps it to a principal ARN:
``principals[access key]`` if given, else ``arn:aws:iam::<account>:user/<access key>``
(access key ``alice`` is user ``alice``). Any client can claim any key: the
local identity is for trying access policies, not a security boundary.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

from stepflow.local.hosts import HostGuard
from stepflow.local.routes import Route, route_for

ProxyHandler = Callable[[dict[str, Any], Any], dict[str, Any]]
"""A Lambda handler for API Gateway REST proxy events."""

MAX_BODY = 10 * 1024 * 1024
"""API Gateway's payload limit; a larger request is refused with 413."""

CONTEXT = SimpleNamespace(
    function_name="stepflow-api",
    memory_limit_in_mb=512,
    invoked_function_arn="arn:aws:lambda:us-east-1:000000000000:function:stepflow-api",
    aws_request_id="local",
)


_CREDENTIAL = re.compile(r"Credential=([A-Za-z0-9_+=,.@-]{1,128})/")


def identity(
    headers: Mapping[str, str], account: str, principals: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The ``requestContext.identity`` of a request signed with SigV4 (see the module doc).

    Unsigned requests get no ``userArn`` (the API sees an unknown caller).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    found = _CREDENTIAL.search(lowered.get("authorization", ""))
    if found is None:
        return {}
    key = found.group(1)
    arn = (principals or {}).get(key) or f"arn:aws:iam::{account}:user/{key}"
    return {"accessKey": key, "userArn": arn, "caller": key, "accountId": account}


class Gateway:
    """Serves ``handler`` on ``host:port`` (port 0: any free port) in a thread pool.

    ``account`` and ``principals`` map a request's access key to its caller
    (:func:`identity`). ``routes`` answer their own ``GET`` requests (pages, streams)
    instead of the API. Bound to a loopback address, it answers only requests
    whose ``Host`` names it (:class:`~stepflow.local.hosts.HostGuard`: no DNS
    rebinding) and refuses any whose ``Origin`` is another site.
    """

    def __init__(
        self,
        host: str,
        port: int,
        handler: ProxyHandler,
        *,
        account: str = "000000000000",
        principals: Mapping[str, str] | None = None,
        routes: Sequence[Route] = (),
    ) -> None:
        self.handler = handler
        self._routes = tuple(routes)
        caller = functools.partial(identity, account=account, principals=principals)
        guard = [HostGuard(frozenset())]  # set once the port is known
        self._server = ThreadingHTTPServer(
            (host, port), _request_class(handler, caller, tuple(routes), guard)
        )
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        bound_port = int(self._server.server_address[1])
        guard[0] = HostGuard.for_server(host, bound_port)
        self.url = f"http://{host}:{bound_port}"

    def start(self) -> Gateway:
        """Start serving in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; routes with a ``close()`` end their streams."""
        for route in self._routes:
            close = getattr(route, "close", None)
            if callable(close):
                close()
        self._server.shutdown()
        self._server.server_close()


def _request_class(
    handler: ProxyHandler,
    caller: Callable[[Mapping[str, str]], dict[str, str]],
    routes: tuple[Route, ...],
    guard: list[HostGuard],
) -> type[BaseHTTPRequestHandler]:
    class _Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # A reply goes out as two writes (headers, body) on a kept-alive connection:
        # with Nagle's algorithm the body waited for the client's delayed ACK of the
        # headers, 40 ms on Linux, on every request.
        disable_nagle_algorithm = True

        def _proxy(self) -> None:
            if guard[0].refuses(self.headers.get("Host"), self.headers.get("Origin")):
                refusal = {"__type": "Forbidden", "message": "not a request from this origin"}
                self.close_connection = True
                self._reply(403, {"Content-Type": "application/json"}, json.dumps(refusal).encode())
                return
            route = route_for(routes, self.command, self.path)
            if route is not None:
                route.serve(self)
                return
            header = (self.headers.get("Content-Length") or "0").strip()
            length = int(header) if header.isascii() and header.isdigit() else -1
            if not 0 <= length <= MAX_BODY:  # a bad length would make read() wait for EOF
                status, kind = (413, "RequestEntityTooLarge") if length > 0 else (400, "BadRequest")
                refusal = {"__type": kind, "message": f"Content-Length {header[:20]!r}"}
                self.close_connection = True
                self._reply(
                    status, {"Content-Type": "application/json"}, json.dumps(refusal).encode()
                )
                return
            data = self.rfile.read(length)
            try:
                body, encoded = data.decode("utf-8"), False
            except UnicodeDecodeError:  # passed on as it came, for the API to refuse
                body, encoded = base64.b64encode(data).decode(), True
            headers = dict(self.headers.items())
            event = {
                "httpMethod": self.command,
                "path": self.path,
                "headers": headers,
                "body": body,
                "isBase64Encoded": encoded,
                "requestContext": {
                    "stage": "local",
                    "identity": {"sourceIp": self.client_address[0], **caller(headers)},
                },
            }
            response = handler(event, CONTEXT)
            self._reply(
                int(response["statusCode"]),
                dict(response.get("headers") or {}),
                str(response.get("body", "")).encode(),
            )

        def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET = do_PUT = do_DELETE = _proxy  # noqa: N815 (http.server's naming)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per request would drown the demo's output

    return _Proxy
