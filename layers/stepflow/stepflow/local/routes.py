"""Pages and streams that ``stepflow local`` serves beside the Step Functions API.

The gateway turns every request into an API Gateway proxy event for the API
Lambda, except the ones a :class:`Route` claims: a route answers a ``GET`` under
its path prefix itself, on the request's own connection, so it can stream
(server-sent events) or serve files (the web console).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Protocol

from stepflow.api.access import AccessPolicy
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
    """The route claiming ``method path``, if any.

    A route claims the ``GET`` requests under its :attr:`~Route.prefix`, and the
    ``POST`` requests under its ``post_prefix`` if it has one (it then reads the
    body itself); every other request goes to the API.
    """
    bare = path.split("?", 1)[0]
    if method == "GET":
        return next((r for r in routes if bare.startswith(r.prefix)), None)
    if method == "POST":
        return next((r for r in routes if _posts_to(r, bare)), None)
    return None


def _posts_to(route: Route, bare: str) -> bool:
    post_prefix = getattr(route, "post_prefix", None)  # optional: few routes take a body
    return isinstance(post_prefix, str) and post_prefix != "/" and bare.startswith(post_prefix)


def local_routes(stack: LocalStack) -> list[Route]:
    """The routes ``stepflow local`` serves for ``stack`` (one line per feature)."""
    from stepflow.live.sse import LiveRoute  # the live package imports nothing of local
    from stepflow.local.gateway import identity  # the gateway imports this module

    if stack.wiring is None:
        return [ConsoleRoute()]
    log, account = stack.wiring.log, stack.wiring.settings.account
    principals = dict(stack.principals)

    def caller(headers: Mapping[str, str]) -> str | None:
        return identity(headers, account, principals).get("userArn")

    live = LiveRoute(log, policy=AccessPolicy.from_json(stack.access_policy), caller=caller)
    return [ConsoleRoute(), live]
