"""The console's own JSON endpoint: a graph, and each state's status in a history.

``POST /console/api/graph`` with ``{"definition": <definition, JSON text or
object>, "events": [<history events>]}`` answers ``{"graph": <graph model>,
"statuses": {state: status}}``; without ``events`` every status is ``not-run``.

The endpoint only computes: it reads nothing. The page gets the definition and
the history itself, through ``POST /`` (the Step Functions API, where
``--access-policy`` and IAM decide what its caller may read), and sends them
here, so a caller learns nothing it could not read through the API. The page
sends the events with the fields the statuses need (``id``, ``type``,
``previousEventId``, the state names), not their inputs and outputs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from stepflow.console.http import Response, json_response, write
from stepflow.graph.model import GraphError, build_graph, node_statuses

__all__ = ["API_PREFIX", "MAX_BODY", "MAX_EVENTS", "GraphApi"]

API_PREFIX = "/console/api/"
MAX_BODY = 16 * 1024 * 1024
"""The largest request body read (the page sends about 100 bytes per event)."""
MAX_EVENTS = 150_000
"""The most events one request may carry; the page says when it holds no more."""

_log = logging.getLogger(__name__)


class GraphApi:
    """Answers ``POST`` under :data:`API_PREFIX` (see the module doc); holds no client."""

    prefix = API_PREFIX

    def response(self, method: str, path: str, body: bytes) -> Response:
        """The response to ``method path`` with ``body``."""
        if urlsplit(path).path != API_PREFIX + "graph":
            return json_response(404, {"message": "no such console endpoint"})
        if method != "POST":
            return json_response(
                405, {"message": "POST the definition and events"}, {"Allow": "POST"}
            )
        try:
            return json_response(200, _graph(body))
        except (_Unusable, GraphError) as exc:
            return json_response(422, {"message": str(exc)})
        except Exception:  # a bug here: the detail stays in the log, not on the page
            _log.exception("console graph endpoint")
            return json_response(500, {"message": "the console could not compute the graph"})

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        """Read the request's body and write the response (a route's ``serve``)."""
        header = (request.headers.get("Content-Length") or "0").strip()
        length = int(header) if header.isascii() and header.isdigit() else -1
        if not 0 <= length <= MAX_BODY:  # refused unread
            request.close_connection = True
            status = 413 if length > MAX_BODY else 400
            write(request, json_response(status, {"message": "bad or too large Content-Length"}))
            return
        body = request.rfile.read(length)
        write(request, self.response(request.command, request.path, body))


class _Unusable(Exception):
    """A request the graph cannot be computed from."""


def _graph(body: bytes) -> dict[str, Any]:
    try:
        request = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise _Unusable(f"the request is not JSON: {exc}") from None
    if not isinstance(request, Mapping):
        raise _Unusable("the request is not a JSON object")
    definition = _definition(request.get("definition"))
    graph = build_graph(definition).to_json()
    events = request.get("events")
    if events is None:
        return {"graph": graph, "statuses": {node["id"]: "not-run" for node in graph["nodes"]}}
    if not isinstance(events, list):
        raise _Unusable("events is not a list")
    if len(events) > MAX_EVENTS:
        raise _Unusable(f"more than {MAX_EVENTS} events")
    return {"graph": graph, "statuses": node_statuses(definition, events)}


def _definition(value: Any) -> Mapping[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError) as exc:
            raise _Unusable(f"the definition is not JSON: {exc}") from None
    if not isinstance(value, Mapping):
        raise _Unusable("the definition is not a JSON object")
    return value
