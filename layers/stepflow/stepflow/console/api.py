"""The console's own JSON endpoint: an execution's graph with each state's status.

``GET /console/api/graph?executionArn=ARN`` answers ``{"execution": {...},
"graph": <graph model>, "statuses": {state: status}, "events": N}``;
``GET /console/api/graph?stateMachineArn=ARN`` answers the graph alone (every
status ``not-run``). Everything else the page does goes to the Step Functions API
itself, so this endpoint is the only thing a server of the console adds.

It gets the definition and the history through a Step Functions client (boto3's,
or any object with its methods): ``stepflow local`` gives one on the stack's own
URL, ``stepflow console --api URL`` one that signs for the deployed stack. The
statuses are computed here from the whole history, by the shared graph model.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from stepflow.console.http import Response, json_response, write
from stepflow.graph.model import GraphError, build_graph, node_statuses

__all__ = ["API_PREFIX", "MAX_EVENTS", "GraphApi"]

API_PREFIX = "/console/api/"
MAX_EVENTS = 25_000
"""Step Functions' history limit; a longer history is read no further."""
_PAGE = 1000
_NOT_FOUND = {"ExecutionDoesNotExist", "StateMachineDoesNotExist", "ResourceNotFound"}
_REFUSED = {"InvalidArn", "ValidationException", "InvalidParameterValue"}
_EXECUTION_FIELDS = (
    "executionArn",
    "stateMachineArn",
    "name",
    "status",
    "startDate",
    "stopDate",
    "redriveCount",
    "redriveStatus",
    "redriveStatusReason",
    "error",
    "cause",
)


class GraphApi:
    """Answers ``GET`` under :data:`API_PREFIX`; ``client`` makes the Step Functions client.

    The client is made once, on the first request (the local stack's URL is known
    only once it serves).
    """

    prefix = API_PREFIX

    def __init__(self, client: Callable[[], Any]) -> None:
        self._make_client = client
        self._client: Any = None
        self._lock = threading.Lock()

    def response(self, path: str) -> Response:
        """The response to ``GET path`` (path and query string)."""
        parts = urlsplit(path)
        if parts.path != API_PREFIX + "graph":
            return json_response(404, {"message": f"no console endpoint {parts.path[:200]}"})
        query = parse_qs(parts.query)
        execution = (query.get("executionArn") or [""])[0]
        machine = (query.get("stateMachineArn") or [""])[0]
        if bool(execution) == bool(machine):
            return json_response(400, {"message": "give executionArn or stateMachineArn"})
        try:
            return json_response(200, self._graph(execution, machine))
        except (_Unusable, GraphError) as exc:
            return json_response(422, {"message": str(exc)})
        except Exception as exc:  # an API refusal, told to the page
            return _refusal(exc)

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        """Write the response to ``request`` (a :class:`~stepflow.local.routes.Route`)."""
        write(request, self.response(request.path))

    def client(self) -> Any:
        """The Step Functions client (made on first use)."""
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _graph(self, execution: str, machine: str) -> dict[str, Any]:
        sfn = self.client()
        if machine:
            definition = _definition(sfn.describe_state_machine(stateMachineArn=machine))
            graph = build_graph(definition).to_json()
            statuses = {node["id"]: "not-run" for node in graph["nodes"]}
            return {"graph": graph, "statuses": statuses}
        described = sfn.describe_execution(executionArn=execution)
        definition = _definition(sfn.describe_state_machine_for_execution(executionArn=execution))
        events = _history(sfn, execution)
        return {
            "execution": {k: described[k] for k in _EXECUTION_FIELDS if k in described},
            "graph": build_graph(definition).to_json(),
            "statuses": node_statuses(definition, events),
            "events": len(events),
        }


class _Unusable(Exception):
    """A definition the graph cannot be drawn from."""


def _definition(described: Mapping[str, Any]) -> Mapping[str, Any]:
    try:
        definition = json.loads(described["definition"])
    except (KeyError, TypeError, ValueError) as exc:
        raise _Unusable(f"the definition is not JSON: {exc}") from exc
    if not isinstance(definition, Mapping):
        raise _Unusable("the definition is not a JSON object")
    return definition


def _history(sfn: Any, execution: str) -> list[Mapping[str, Any]]:
    """Every event of ``execution``, oldest first, at most :data:`MAX_EVENTS`."""
    events: list[Mapping[str, Any]] = []
    token: str | None = None
    while len(events) < MAX_EVENTS:
        page = sfn.get_execution_history(
            executionArn=execution,
            maxResults=_PAGE,
            **({"nextToken": token} if token else {}),
        )
        events.extend(page.get("events", []))
        token = page.get("nextToken")
        if not token:
            break
    return events[:MAX_EVENTS]


def _refusal(exc: Exception) -> Response:
    reply = getattr(exc, "response", None)
    error = reply.get("Error", {}) if isinstance(reply, Mapping) else {}
    code = str(error.get("Code", type(exc).__name__))
    message = str(error.get("Message", exc))[:1000]
    status = 404 if code in _NOT_FOUND else 400 if code in _REFUSED else 502
    return json_response(status, {"code": code, "message": message})
