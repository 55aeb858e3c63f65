"""The console as one route of ``stepflow local``: its JSON endpoint and its files."""

from __future__ import annotations

from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from stepflow.console.api import API_PREFIX, GraphApi
from stepflow.console.assets import PREFIX, ConsoleAssets
from stepflow.console.http import Response

__all__ = ["ConsoleRoute"]


class ConsoleRoute:
    """Claims ``/console/``: ``/console/api/`` goes to :class:`GraphApi`, the rest to the files.

    ``client`` makes the Step Functions client the JSON endpoint reads through.
    """

    prefix = PREFIX

    def __init__(self, client: Callable[[], Any], assets: ConsoleAssets | None = None) -> None:
        self.api = GraphApi(client)
        self.assets = assets if assets is not None else ConsoleAssets()

    def response(self, path: str) -> Response:
        """The response to ``GET path``."""
        if urlsplit(path).path.startswith(API_PREFIX):
            return self.api.response(path)
        return self.assets.response(path)

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        """Write the response to ``request``."""
        if urlsplit(request.path).path.startswith(API_PREFIX):
            self.api.serve(request)
        else:
            self.assets.serve(request)
