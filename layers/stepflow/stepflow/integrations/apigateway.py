"""``arn:aws:states:::apigateway:invoke``: call an API Gateway endpoint (REST or HTTP API).

Parameters as Step Functions spells them: ``ApiEndpoint`` (the API's host,
``<id>.execute-api.<region>.amazonaws.com``; an ``http://`` or ``https://``
prefix is kept, e.g. for a local endpoint), ``Method``, ``Stage``, ``Path``,
``QueryParameters`` and ``Headers`` (each value a list of strings),
``RequestBody`` (sent as JSON, a string as a JSON string), ``AllowNullValues`` (keep the
body's null members) and ``AuthType`` (``NO_AUTH``; ``IAM_ROLE`` and
``RESOURCE_POLICY`` sign the request with SigV4 for ``execute-api`` with the
task role's credentials). The output is ``{Headers, ResponseBody, StatusCode,
StatusText}``, the body parsed when it is JSON; a status of 400 or more fails
with ``ApiGateway.<status>`` and the body as cause.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote, urlencode

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from stepflow.engine.resources import Pattern
from stepflow.errors import StatesErrorName
from stepflow.integrations.base import TaskRequest, unknown_action
from stepflow.integrations.http_common import (
    JSON,
    BadParameters,
    drop_nulls,
    header_lists,
    parsed_body,
    problem_outcome,
    require_str,
    status_text,
    timeout_of,
)
from stepflow.integrations.http_port import HttpPort, HttpProblem, HttpRequest, Urllib3Http
from stepflow.runtime.clients import TaskClients
from stepflow.runtime.outcome import TaskOutcome

METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})
AUTH_TYPES = frozenset({"NO_AUTH", "IAM_ROLE", "RESOURCE_POLICY"})
FORBIDDEN_HEADERS = frozenset(
    name.lower()
    for name in (
        "Authorization", "Connection", "Content-md5", "Expect", "Host", "Max-Forwards",
        "Proxy-Authenticate", "Server", "TE", "Transfer-Encoding", "Trailer", "Upgrade",
        "Via", "Www-Authenticate",
    )
)  # fmt: skip
"""Headers a task may not set (nor any ``X-Forwarded*``, ``X-Amz*``): Step Functions sets them."""
_FORBIDDEN_PREFIXES = ("x-forwarded", "x-amz")
_EXECUTE_API_HOST = re.compile(r"^[^.]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


class ApiGatewayInvoke:
    """The ``apigateway:invoke`` integration (request-response and ``.waitForTaskToken``)."""

    service = "apigateway"
    patterns: frozenset[Pattern] = frozenset({"request-response", "wait-for-token"})

    def __init__(self, http: HttpPort | None = None) -> None:
        self.http: HttpPort = http if http is not None else Urllib3Http()

    def check(self, action: str, pattern: Pattern) -> str | None:
        """Only ``invoke``."""
        return unknown_action("apigateway", action, ("invoke",))

    def parameters_problem(self, action: str, parameters: Any) -> str | None:
        """What AWS refuses before scheduling the task (the Headers' format...); no I/O.

        Every shape problem of the request (a field's type or format, a forbidden
        header) is one: AWS fails the state with ``States.Runtime`` before any
        Task event. Signing problems show only when the task runs.
        """
        try:
            if not isinstance(parameters, dict):
                raise BadParameters("Parameters")
            _checked(parameters)
        except BadParameters as bad:
            return bad.problem_text
        return None

    def call(self, request: TaskRequest, clients: TaskClients) -> TaskOutcome:
        """Send the request once; the response as Step Functions returns it."""
        parameters = request.parameters
        try:
            if not isinstance(parameters, dict):
                raise BadParameters("Parameters")
            http_request = self._request(request, parameters, clients)
        except BadParameters as bad:
            return bad.outcome(parameters)
        try:
            response = self.http.send(http_request)
        except HttpProblem as problem:
            return problem_outcome(problem, StatesErrorName.TASK_FAILED, parameters)
        if response.status >= 400:
            return TaskOutcome.failed(
                f"ApiGateway.{response.status}", response.body.decode("utf-8", "replace")
            )
        return TaskOutcome.succeeded(
            {
                "Headers": header_lists(response),
                "ResponseBody": parsed_body(response),
                "StatusCode": response.status,
                "StatusText": status_text(response),
            }
        )

    def _request(
        self, request: TaskRequest, parameters: dict[str, Any], clients: TaskClients
    ) -> HttpRequest:
        method, auth, url, headers = _checked(parameters)
        body: bytes | None = None
        if "RequestBody" in parameters:
            value = parameters["RequestBody"]
            if not parameters.get("AllowNullValues"):
                value = drop_nulls(value)
            # Always JSON, a string too: AWS sends "true" as the JSON string "\"true\"".
            body = json.dumps(value, ensure_ascii=False).encode()
            headers.append(("Content-Type", JSON))
        headers.append(("Accept", JSON))
        if auth != "NO_AUTH":
            headers = sign(request, clients, method, url, headers, body)
        return HttpRequest(method, url, tuple(headers), body, timeout_of(request.timeout_seconds))


def _checked(parameters: dict[str, Any]) -> tuple[str, str, str, list[tuple[str, str]]]:
    """``(method, auth type, URL, headers)`` of valid parameters (else raises BadParameters)."""
    endpoint = require_str(parameters, "ApiEndpoint") or ""
    method = require_str(parameters, "Method") or ""
    if method not in METHODS:
        raise BadParameters("Method")
    auth = require_str(parameters, "AuthType", required=False) or "NO_AUTH"
    if auth not in AUTH_TYPES:
        raise BadParameters("AuthType")
    return method, auth, invoke_url(endpoint, parameters), _headers(parameters)


def invoke_url(endpoint: str, parameters: dict[str, Any]) -> str:
    """``https://<ApiEndpoint>/<Stage>/<Path>?<QueryParameters>`` (the scheme kept if given)."""
    base = endpoint if "://" in endpoint else f"https://{endpoint}"
    base = base.rstrip("/")
    segments = []
    for name in ("Stage", "Path"):
        value = require_str(parameters, name, required=False)
        if value:
            segments.append(quote(value.strip("/"), safe="/-_.~%@:+$,;=!*'()"))
    url = "/".join([base, *segments])
    query = parameters.get("QueryParameters")
    if query is not None:
        # %20, never "+", for a space: SigV4 signs the query as percent-encoded.
        pairs = _string_lists(query, "QueryParameters")
        url += "?" + urlencode(pairs, doseq=True, quote_via=quote)
    return url


def _headers(parameters: dict[str, Any]) -> list[tuple[str, str]]:
    given = parameters.get("Headers")
    if given is None:
        return []
    pairs = _string_lists(given, "Headers")
    for name, _values in pairs:
        lowered = name.lower()
        if lowered in FORBIDDEN_HEADERS or lowered.startswith(_FORBIDDEN_PREFIXES):
            raise BadParameters("Headers", f"contains unsupported values: {name}")
    return [(name, value) for name, values in pairs for value in values]


def _string_lists(value: Any, field: str) -> list[tuple[str, list[str]]]:
    """A map of name to list of strings (AWS's shape for headers and query parameters)."""
    if not isinstance(value, dict):
        raise BadParameters(field)
    pairs: list[tuple[str, list[str]]] = []
    for name, values in value.items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise BadParameters(field)
        pairs.append((name, values))
    return pairs


def sign(
    request: TaskRequest,
    clients: TaskClients,
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes | None,
) -> list[tuple[str, str]]:
    """``headers`` plus a SigV4 signature for ``execute-api`` with the task role's credentials.

    The region is the endpoint host's (``<id>.execute-api.<region>.amazonaws.com``),
    else the task's.
    """
    client = request.client(clients, "apigateway")
    # The role's credentials as botocore holds them (refreshed for assumed roles).
    credentials = client._get_credentials()
    if credentials is None:
        raise BadParameters("AuthType", "needs credentials, and the task role has none")
    host = url.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
    found = _EXECUTE_API_HOST.match(host)
    region = found.group(1) if found else (request.region or client.meta.region_name)
    aws_request = AWSRequest(method=method, url=url, data=body or b"", headers=dict(headers))
    SigV4Auth(credentials.get_frozen_credentials(), "execute-api", region).add_auth(aws_request)
    signed = {k.lower() for k in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")}
    extra = [(k, str(v)) for k, v in aws_request.headers.items() if k.lower() in signed]
    return [*headers, *extra]


INTEGRATIONS: tuple[ApiGatewayInvoke, ...] = (ApiGatewayInvoke(),)
