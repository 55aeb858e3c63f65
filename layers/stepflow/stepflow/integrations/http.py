"""``arn:aws:states:::http:invoke``: call any HTTPS API with an EventBridge connection's auth.

Parameters as Step Functions spells them: ``ApiEndpoint`` (the full URL),
``Method``, ``Authentication.ConnectionArn`` (or ``InvocationConfig.ConnectionArn``),
``Headers`` and ``QueryParameters`` (string values), ``RequestBody`` (JSON, or a
string sent as is) and ``Transform`` (``RequestBodyEncoding`` ``URL_ENCODED``
with ``RequestEncodingOptions.ArrayFormat`` ``INDICES``, ``REPEAT``,
``COMMAS`` or ``BRACKETS``). The connection is read with DescribeConnection
and its Secrets Manager secret, as the task's role: API key, basic, or OAuth
client credentials (a token request to the connection's endpoint first), plus
the connection's own invocation headers, query and body parameters.

The output is ``{Headers, ResponseBody, StatusCode, StatusText}``; a status
outside 2xx fails with ``States.Http.StatusCode.<code>`` and the body as
cause; no response within the 60-second limit is ``States.Http.Socket``.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode, urlsplit

from stepflow.engine.resources import Pattern
from stepflow.integrations.base import TaskRequest, unknown_action
from stepflow.integrations.errors import ErrorNames
from stepflow.integrations.http_common import (
    JSON,
    BadParameters,
    body_text,
    header_lists,
    parsed_body,
    problem_outcome,
    require_str,
    status_text,
)
from stepflow.integrations.http_port import (
    DEFAULT_TIMEOUT_SECONDS,
    HttpPort,
    HttpProblem,
    HttpRequest,
    Urllib3Http,
)
from stepflow.runtime.clients import TaskClients
from stepflow.runtime.outcome import TaskOutcome

SOCKET = "States.Http.Socket"
STATUS_PREFIX = "States.Http.StatusCode."
CONNECTION_PREFIX = "Events.ConnectionResource"
METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})
ARRAY_FORMATS = frozenset({"INDICES", "REPEAT", "COMMAS", "BRACKETS"})
FORBIDDEN_HEADERS = frozenset(
    {"host", "content-length", "connection", "transfer-encoding", "expect", "te", "upgrade",
     "authorization", "proxy-authorization", "trailer"}
)  # fmt: skip
"""Headers the connection or the HTTP layer sets; a task may not."""
FORM = "application/x-www-form-urlencoded"


class ConnectionProblem(Exception):
    """The connection cannot authorize the call (``Events.ConnectionResource.*``)."""

    def __init__(self, outcome: TaskOutcome) -> None:
        super().__init__(outcome.cause)
        self.outcome = outcome


class HttpInvoke:
    """The ``http:invoke`` integration (request-response)."""

    service = "http"
    patterns: frozenset[Pattern] = frozenset({"request-response"})

    def __init__(self, http: HttpPort | None = None) -> None:
        self.http: HttpPort = http if http is not None else Urllib3Http()

    def check(self, action: str, pattern: Pattern) -> str | None:
        """Only ``invoke``."""
        return unknown_action("http", action, ("invoke",))

    def call(self, request: TaskRequest, clients: TaskClients) -> TaskOutcome:
        """Authorize with the connection, send once, return the response as AWS does."""
        parameters = request.parameters
        timeout = min(float(request.timeout_seconds or DEFAULT_TIMEOUT_SECONDS), 60.0)
        try:
            if not isinstance(parameters, dict):
                raise BadParameters("Parameters")
            http_request = self._request(request, parameters, clients, timeout)
            response = self.http.send(http_request)
        except BadParameters as bad:
            return bad.outcome(parameters)
        except ConnectionProblem as problem:
            return problem.outcome
        except HttpProblem as problem:
            if problem.kind == "timeout" and (request.timeout_seconds or 61) > 60:
                return TaskOutcome.failed(SOCKET, problem.message)
            return problem_outcome(problem, SOCKET, parameters)
        if not 200 <= response.status < 300:
            return TaskOutcome.failed(f"{STATUS_PREFIX}{response.status}", body_text(response))
        return TaskOutcome.succeeded(
            {
                "Headers": header_lists(response),
                "ResponseBody": parsed_body(response),
                "StatusCode": str(response.status),
                "StatusText": status_text(response),
            }
        )

    def _request(
        self,
        request: TaskRequest,
        parameters: dict[str, Any],
        clients: TaskClients,
        timeout: float,
    ) -> HttpRequest:
        build_request(parameters, request.region)  # a bad field is refused before any secret
        connection_arn = _connection_arn(parameters)
        auth = connection_auth(request, clients, connection_arn, self.http, timeout)
        return build_request(parameters, request.region, auth, timeout)


def build_request(
    parameters: dict[str, Any],
    region: str | None,
    auth: ConnectionAuth | None = None,
    timeout: float = 0.0,
) -> HttpRequest:
    """The request an ``http:invoke`` Task sends for ``parameters``, plus ``auth``'s parts.

    Without ``auth`` it is the request as TestState's TRACE shows it: what the
    connection adds (its secrets) left out. Raises :class:`BadParameters`.
    """
    endpoint = require_str(parameters, "ApiEndpoint") or ""
    method = require_str(parameters, "Method") or ""
    if method.upper() not in METHODS:
        raise BadParameters("Method")
    method = method.upper()
    if urlsplit(endpoint).scheme not in ("http", "https"):
        raise BadParameters("ApiEndpoint")
    auth = auth if auth is not None else ConnectionAuth()
    headers = _string_map(parameters.get("Headers"), "Headers")
    for name, _ in headers:
        if name.lower() in FORBIDDEN_HEADERS:
            raise BadParameters("Headers", f"contains unsupported values: {name}")
    headers += auth.headers
    query = [*_string_map(parameters.get("QueryParameters"), "QueryParameters"), *auth.query]
    url = endpoint
    if query:
        url += ("&" if urlsplit(endpoint).query else "?") + urlencode(query)
    if auth.authorization:
        headers.append(("Authorization", auth.authorization))
    body, content_type = _body(parameters, auth.body)
    if body is not None and not any(n.lower() == "content-type" for n, _ in headers):
        headers.append(("Content-Type", content_type))
    headers.append(("User-Agent", f"Amazon|StepFunctions|HttpInvoke|{region or 'us-east-1'}"))
    return HttpRequest(method, url, tuple(headers), body, timeout)


def _connection_arn(parameters: dict[str, Any]) -> str:
    for field in ("Authentication", "InvocationConfig"):
        holder = parameters.get(field)
        if holder is not None:
            if not isinstance(holder, dict) or not isinstance(holder.get("ConnectionArn"), str):
                raise BadParameters(field)
            return str(holder["ConnectionArn"])
    raise BadParameters("Authentication", "is required")


def _string_map(value: Any, field: str) -> list[tuple[str, str]]:
    """A map of string values (a list of strings repeats the name)."""
    if value is None:
        return []
    if not isinstance(value, dict):
        raise BadParameters(field)
    pairs: list[tuple[str, str]] = []
    for name, item in value.items():
        items = item if isinstance(item, list) else [item]
        for one in items:
            if isinstance(one, bool) or not isinstance(one, str | int | float):
                raise BadParameters(field)
            pairs.append((str(name), str(one)))
    return pairs


def _body(parameters: dict[str, Any], extra: dict[str, Any]) -> tuple[bytes | None, str]:
    if "RequestBody" not in parameters and not extra:
        return None, JSON
    value = parameters.get("RequestBody")
    if extra:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise BadParameters("RequestBody", "must be a JSON object to add the connection's")
        value = {**value, **extra}
    transform = parameters.get("Transform")
    encoding = "NONE"
    array_format = "INDICES"
    if transform is not None:
        if not isinstance(transform, dict):
            raise BadParameters("Transform")
        encoding = str(transform.get("RequestBodyEncoding") or "NONE")
        options = transform.get("RequestEncodingOptions") or {}
        array_format = str(options.get("ArrayFormat") or "INDICES")
        if encoding not in ("NONE", "URL_ENCODED") or array_format not in ARRAY_FORMATS:
            raise BadParameters("Transform")
    if encoding == "URL_ENCODED":
        if not isinstance(value, dict):
            raise BadParameters("RequestBody", "must be a JSON object to be URL-encoded")
        return urlencode(form_pairs(value, array_format)).encode(), FORM
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.encode(), JSON


def form_pairs(value: dict[str, Any], array_format: str) -> list[tuple[str, str]]:
    """A JSON object as form fields: ``a[b]=1``; arrays as ``ArrayFormat`` says."""
    pairs: list[tuple[str, str]] = []

    def scalar(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        return "" if v is None else v if isinstance(v, str) else json.dumps(v)

    def walk(key: str, v: Any) -> None:
        if isinstance(v, dict):
            for k, item in v.items():
                walk(f"{key}[{k}]", item)
        elif isinstance(v, list):
            if array_format == "COMMAS":
                pairs.append((key, ",".join(scalar(i) for i in v)))
                return
            for i, item in enumerate(v):
                name = {"INDICES": f"{key}[{i}]", "BRACKETS": f"{key}[]"}.get(array_format, key)
                walk(name, item)
        else:
            pairs.append((key, scalar(v)))

    for k, v in value.items():
        walk(str(k), v)
    return pairs


class ConnectionAuth:
    """What a connection adds to a call: Authorization, headers, query and body parameters."""

    def __init__(self) -> None:
        self.authorization: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.query: list[tuple[str, str]] = []
        self.body: dict[str, Any] = {}


def connection_auth(
    request: TaskRequest, clients: TaskClients, arn: str, http: HttpPort, timeout: float
) -> ConnectionAuth:
    """The connection's authorization, read as the task's role (its secret included)."""
    region = arn.split(":")[3] if arn.startswith("arn:") and len(arn.split(":")) > 3 else None
    events = request.client(clients, "events", region or None)
    try:
        described = events.describe_connection(Name=connection_name(arn))
        secret_arn = str(described.get("SecretArn") or "")
        stored = request.client(clients, "secretsmanager", region or None).get_secret_value(
            SecretId=secret_arn
        )
    except Exception as exc:  # a ClientError names the failure; anything else is ours
        failed = ErrorNames(CONNECTION_PREFIX, "AmazonEventBridge").failure(exc)
        if failed is None:
            raise
        raise ConnectionProblem(failed) from exc
    secret = _secret_object(stored.get("SecretString"))
    state = described.get("ConnectionState")
    if state not in (None, "AUTHORIZED"):
        raise ConnectionProblem(
            TaskOutcome.failed(
                f"{CONNECTION_PREFIX}.InvalidConnectionState",
                f"The connection {arn} is {state}, not AUTHORIZED.",
            )
        )
    auth = ConnectionAuth()
    kind = described.get("AuthorizationType")
    if kind == "API_KEY":
        name, value = _secret(secret, "api_key_name"), _secret(secret, "api_key_value")
        auth.headers.append((name, value))
    elif kind == "BASIC":
        pair = f"{_secret(secret, 'username')}:{_secret(secret, 'password')}"
        auth.authorization = "Basic " + base64.b64encode(pair.encode()).decode()
    elif kind == "OAUTH_CLIENT_CREDENTIALS":
        auth.authorization = "Bearer " + _oauth_token(secret, http, timeout)
    _add_parameters(auth, secret.get("invocation_http_parameters") or {})
    return auth


def connection_name(arn: str) -> str:
    """The connection name in ``arn:...:connection/<name>/<id>`` (a bare name as is)."""
    if ":connection/" in arn:
        return arn.split(":connection/", 1)[1].split("/", 1)[0]
    return arn


def _secret_object(text: Any) -> dict[str, Any]:
    """The connection's secret as a JSON object; anything else fails the task (text not quoted)."""
    try:
        secret = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        secret = None
    if not isinstance(secret, dict):
        raise ConnectionProblem(
            TaskOutcome.failed(
                f"{CONNECTION_PREFIX}.InvalidConnectionState",
                "The connection's secret is not a JSON object.",
            )
        )
    return secret


def _secret(secret: dict[str, Any], key: str) -> str:
    value = secret.get(key)
    client = secret.get("client_parameters")
    if value is None and isinstance(client, dict):
        value = client.get(key)
    if not isinstance(value, str):
        raise ConnectionProblem(
            TaskOutcome.failed(
                f"{CONNECTION_PREFIX}.InvalidConnectionState",
                f"The connection's secret has no {key}.",
            )
        )
    return value


def _add_parameters(auth: ConnectionAuth, parameters: Any) -> None:
    headers, query, body = (
        _parameter_items(parameters, kind)
        for kind in ("header_parameters", "query_string_parameters", "body_parameters")
    )
    auth.headers.extend((str(item.get("key")), str(item.get("value"))) for item in headers)
    auth.query.extend((str(item.get("key")), str(item.get("value"))) for item in query)
    auth.body.update((str(item.get("key")), item.get("value")) for item in body)


def _parameter_items(parameters: Any, kind: str) -> list[dict[str, Any]]:
    """The ``kind`` entries of a secret's parameters (each an object), else the task fails."""
    items = parameters.get(kind) if isinstance(parameters, dict) else parameters
    if items is None or items == []:
        return []
    if isinstance(items, list) and all(isinstance(item, dict) for item in items):
        return items
    raise ConnectionProblem(
        TaskOutcome.failed(
            f"{CONNECTION_PREFIX}.InvalidConnectionState",
            f"The connection's secret has malformed {kind}.",
        )
    )


def _oauth_token(secret: dict[str, Any], http: HttpPort, timeout: float) -> str:
    """A client-credentials token from the connection's authorization endpoint."""
    endpoint = _secret(secret, "authorization_endpoint")
    method = str(secret.get("http_method") or "POST")
    extra = ConnectionAuth()
    _add_parameters(extra, secret.get("o_auth_http_parameters") or {})
    pair = f"{_secret(secret, 'client_id')}:{_secret(secret, 'client_secret')}"
    fields = [("grant_type", "client_credentials"), *((k, str(v)) for k, v in extra.body.items())]
    url = endpoint
    if extra.query:
        url += ("&" if urlsplit(endpoint).query else "?") + urlencode(extra.query)
    headers = [
        ("Authorization", "Basic " + base64.b64encode(pair.encode()).decode()),
        ("Content-Type", FORM),
        *extra.headers,
    ]
    try:
        response = http.send(
            HttpRequest(method, url, tuple(headers), urlencode(fields).encode(), timeout)
        )
    except HttpProblem as problem:
        raise ConnectionProblem(TaskOutcome.failed(SOCKET, problem.message)) from problem
    token = parsed_body(response)
    if response.status >= 300 or not isinstance(token, dict) or "access_token" not in token:
        raise ConnectionProblem(
            TaskOutcome.failed(
                f"{CONNECTION_PREFIX}.AuthorizationFailed",
                f"The OAuth endpoint answered {response.status}: {body_text(response)[:1000]}",
            )
        )
    return str(token["access_token"])


INTEGRATIONS: tuple[HttpInvoke, ...] = (HttpInvoke(),)
