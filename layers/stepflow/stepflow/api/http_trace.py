"""TestState's TRACE data of an HTTP Task: the request it sent and the response it got.

Built from the Task's effective parameters (``ApiEndpoint``, ``Method``,
``Headers``, ``QueryParameters``, ``RequestBody``) and its raw result
(``StatusCode``, ``StatusText``, ``Headers``, ``ResponseBody``). What an
EventBridge connection adds (its authorization header, query parameters or body
fields) is never shown: StepFlow's HTTP integration does not report it, so
``revealSecrets`` reveals nothing more here.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

from stepflow.data.serialize import dumps

HTTP_INVOKE = "arn:aws:states:::http:invoke"


def http_trace(resource: Any, parameters: Any, result: Any) -> dict[str, Any]:
    """``{"request", "response"}`` of an ``http:invoke`` Task that ran; else empty."""
    if resource != HTTP_INVOKE or not isinstance(parameters, dict):
        return {}
    if not isinstance(result, dict):
        return {}
    endpoint = str(parameters.get("ApiEndpoint") or "")
    query = parameters.get("QueryParameters")
    url = endpoint
    if isinstance(query, dict) and query:
        url += ("&" if urlsplit(endpoint).query else "?") + urlencode(
            [(str(k), str(v)) for k, v in query.items()]
        )
    protocol = urlsplit(endpoint).scheme
    request = {
        "protocol": protocol,
        "method": str(parameters.get("Method") or "").upper(),
        "url": url,
        "headers": dumps(parameters.get("Headers") or {}),
        "body": _text(parameters.get("RequestBody")),
    }
    response = {
        "protocol": protocol,
        "statusCode": str(result.get("StatusCode", "")),
        "statusMessage": str(result.get("StatusText", "")),
        "headers": dumps(result.get("Headers") or {}),
        "body": _text(result.get("ResponseBody")),
    }
    return {"request": request, "response": response}


def _text(body: Any) -> str:
    if body is None:
        return ""
    return body if isinstance(body, str) else dumps(body)
