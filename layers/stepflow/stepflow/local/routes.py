"""Pages and streams that ``stepflow local`` serves beside the Step Functions API.

The gateway turns every request into an API Gateway proxy event for the API
Lambda, except the ones a :class:`Route` claims: a route answers a ``GET`` under
its path prefix itself, on the request's own connection, so it can stream
(server-sent events) or serve files (the web console).
"""

from __future__ import annotations

from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Protocol

from stepflow.console import ConsoleRoute

if TYPE_CHECKING:
    from stepflow.local.stack import LocalStack

__all__ = ["Route", "local_routes", "route_for"]


class Route(Protocol):
    """Answers the ``GET`` requests whose path starts with :attr:`prefix`."""

    prefix: str
    """Path prefix claimed, e.g. ``/console/``; the query string is not part of the match."""

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        """Write the whole response to ``request`` (status, headers, body or stream)."""


def route_for(routes: Sequence[Route], method: str, path: str) -> Route | None:
    """The route claiming ``method path``, if any (only ``GET`` is claimed)."""
    if method != "GET":
        return None
    bare = path.split("?", 1)[0]
    return next((r for r in routes if bare.startswith(r.prefix)), None)


def local_routes(stack: LocalStack) -> list[Route]:
    """The routes ``stepflow local`` serves for ``stack`` (one line per feature)."""
    from stepflow.live.sse import LiveRoute  # the live package imports nothing of local

    log = stack.wiring.log if stack.wiring is not None else None
    return [ConsoleRoute(stack.stepfunctions), *([LiveRoute(log)] if log is not None else [])]
