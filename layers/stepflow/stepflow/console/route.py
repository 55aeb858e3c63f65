"""The console as one route of ``stepflow local``: its JSON endpoint and its files."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from stepflow.console.api import API_PREFIX, GraphApi
from stepflow.console.assets import PREFIX, ConsoleAssets

__all__ = ["ConsoleRoute"]


class ConsoleRoute:
    """Claims ``GET /console/`` (the files) and ``POST /console/api/`` (:class:`GraphApi`)."""

    prefix = PREFIX
    post_prefix = API_PREFIX

    def __init__(self, assets: ConsoleAssets | None = None) -> None:
        self.api = GraphApi()
        self.assets = assets if assets is not None else ConsoleAssets()

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        """Write the response to ``request``."""
        if urlsplit(request.path).path.startswith(API_PREFIX):
            self.api.serve(request)
        else:
            self.assets.serve(request)
