"""The console's pages and files, served from the package data.

:class:`ConsoleAssets` is the reusable part: ``stepflow local`` mounts it at
``/console/`` and so can any other server (``stepflow console --api URL``), by
calling :meth:`ConsoleAssets.response` with the request path or using it as a
route. Every page path (``/console/``, ``/console/executions/<arn>``,
``/console/state-machines/<arn>``) answers the same single page, which reads its
location; the files are under ``/console/static/``. The graph layout library is
fetched by ``make console-assets`` into ``static/vendor`` (gitignored); when it
is missing, its URL answers a small script that makes the page say so.
"""

from __future__ import annotations

import re
from http.server import BaseHTTPRequestHandler
from importlib import resources
from importlib.resources.abc import Traversable
from urllib.parse import unquote, urlsplit

from stepflow.console.http import Response, write

__all__ = ["LAYOUT_LIBRARY", "PREFIX", "ConsoleAssets"]

PREFIX = "/console/"
LAYOUT_LIBRARY = "vendor/dagre.min.js"
"""The layout library's path under ``static/`` (``make console-assets``)."""

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
_FILE = re.compile(r"(?:vendor/)?[A-Za-z0-9_-][A-Za-z0-9._-]{0,80}")
_PAGES = re.compile(r"(?:|index\.html|executions/[^/]+|state-machines/[^/]+)")
_MISSING_LIBRARY = (
    b"window.STEPFLOW_LAYOUT_MISSING = "
    b'"The graph layout library is missing: run `make console-assets` (it fetches '
    b'@dagrejs/dagre from the npm registry into the package).";\n'
)


class ConsoleAssets:
    """Answers ``GET``s under :data:`PREFIX` with the console's page and static files."""

    prefix = PREFIX

    def __init__(self, root: Traversable | None = None) -> None:
        self.root = root if root is not None else resources.files("stepflow.console") / "static"

    def response(self, path: str) -> Response:
        """The response to ``GET path`` (an absolute path, query string allowed)."""
        bare = urlsplit(path).path
        if not bare.startswith(PREFIX):
            return _not_found()
        rest = bare[len(PREFIX) :]
        if _PAGES.fullmatch(rest):
            return self._file("index.html") or _not_found()
        if rest.startswith("static/"):
            name = unquote(rest[len("static/") :])
            if _FILE.fullmatch(name) and ".." not in name:
                found = self._file(name)
                if found is not None:
                    return found
                if name == LAYOUT_LIBRARY:
                    return Response(200, _TYPES[".js"], _MISSING_LIBRARY)
        return _not_found()

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        """Write the response to ``request`` (a :class:`~stepflow.local.routes.Route`)."""
        write(request, self.response(request.path))

    @property
    def has_layout_library(self) -> bool:
        """Whether ``make console-assets`` has put the layout library in place."""
        return self.root.joinpath(*LAYOUT_LIBRARY.split("/")).is_file()

    def _file(self, name: str) -> Response | None:
        suffix = name[name.rfind(".") :]
        kind = _TYPES.get(suffix)
        target = self.root.joinpath(*name.split("/"))
        if kind is None or not target.is_file():
            return None
        return Response(200, kind, target.read_bytes())


def _not_found() -> Response:
    return Response(404, "text/plain; charset=utf-8", b"not found\n")
