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
from urllib.parse import urlsplit

from stepflow.data.serialize import dumps
from stepflow.integrations.http import build_request
from stepflow.integrations.http_common import BadParameters

HTTP_INVOKE = "arn:aws:states:::http:invoke"


def http_trace(
    resource: Any, parameters: Any, result: Any, region: str | None = None
) -> dict[str, Any]:
    """``{"request", "response"}`` of an ``http:invoke`` Task that ran; else empty.

    The request is built by the HTTP integration's own :func:`build_request`
    (query arrays repeated, Content-Type and User-Agent added), without what a
    connection adds.
    """
    if resource != HTTP_INVOKE or not isinstance(parameters, dict):
        return {}
    if not isinstance(result, dict):
        return {}
    try:
        sent = build_request(parameters, region)
    except BadParameters:
        return {}
    protocol = urlsplit(sent.url).scheme
    headers: dict[str, str] = {}
    for name, value in sent.headers:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    request = {
        "protocol": protocol,
        "method": sent.method,
        "url": sent.url,
        "headers": dumps(headers),
        "body": "" if sent.body is None else sent.body.decode("utf-8", "replace"),
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
