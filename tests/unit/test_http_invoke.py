"""http:invoke against a real local HTTP server, with EventBridge connections in moto."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from stepflow.integrations import IntegrationInvoker, Registry
from stepflow.integrations.http import HttpInvoke, connection_name, form_pairs
from stepflow.integrations.http_port import Urllib3Http
from stepflow.runtime.clients import FixedClients
from stepflow.testing import WorkflowEnvironment

from tests.moto_env import REGION, offline_aws
from tests.unit.http_target import HttpTarget, http_target

RESOURCE = "arn:aws:states:::http:invoke"


@pytest.fixture(scope="module")
def target() -> Iterator[HttpTarget]:
    with http_target() as running:
        yield running


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with offline_aws(monkeypatch):
        yield {
            "events": boto3.client("events", region_name=REGION),
            "secretsmanager": boto3.client("secretsmanager", region_name=REGION),
        }


def connection(aws: dict[str, Any], name: str, kind: str, parameters: dict[str, Any]) -> str:
    created = aws["events"].create_connection(
        Name=name, AuthorizationType=kind, AuthParameters=parameters
    )
    return str(created["ConnectionArn"])


def api_key(aws: dict[str, Any]) -> str:
    return connection(
        aws,
        "key",
        "API_KEY",
        {"ApiKeyAuthParameters": {"ApiKeyName": "x-api-key", "ApiKeyValue": "s3cret"}},
    )


def run(aws: dict[str, Any], parameters: dict[str, Any], **task: Any) -> Any:
    registry = Registry()
    registry.register(HttpInvoke(Urllib3Http()))
    env = WorkflowEnvironment(invoker=IntegrationInvoker(registry, FixedClients(**aws)))
    state = {"Type": "Task", "Resource": RESOURCE, "Parameters": parameters, "End": True, **task}
    arn = env.start({"StartAt": "Call", "States": {"Call": state}}, {})
    env.run(arn)
    return env.result(arn)


def test_api_key_connection_json_body_and_query(aws: dict[str, Any], target: HttpTarget) -> None:
    before = target.count("inspect")
    result = run(
        aws,
        {
            "ApiEndpoint": f"{target.url}/inspect",
            "Method": "POST",
            "Authentication": {"ConnectionArn": api_key(aws)},
            "Headers": {"X-Custom": "one"},
            "QueryParameters": {"page": "2"},
            "RequestBody": {"name": "ada", "tags": ["a", "b"]},
        },
    )
    assert result.status == "SUCCEEDED", result.cause
    out = result.result
    assert target.count("inspect") == before + 1
    seen = out["ResponseBody"]
    assert seen["headers"]["x-api-key"] == "s3cret"
    assert seen["headers"]["x-custom"] == "one"
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["headers"]["user-agent"].startswith("Amazon|StepFunctions|HttpInvoke|")
    assert seen["query"] == {"page": ["2"]}
    assert seen["body"] == {"name": "ada", "tags": ["a", "b"]}
    assert out["StatusCode"] == "200"
    assert out["StatusText"] == "OK"
    assert out["Headers"]["Content-Type"] == ["application/json"]


def test_basic_connection_and_url_encoded_body(aws: dict[str, Any], target: HttpTarget) -> None:
    arn = connection(
        aws, "basic", "BASIC", {"BasicAuthParameters": {"Username": "u", "Password": "p"}}
    )
    result = run(
        aws,
        {
            "ApiEndpoint": f"{target.url}/inspect",
            "Method": "PUT",
            "InvocationConfig": {"ConnectionArn": arn},
            "RequestBody": {"a": {"b": 1}, "list": ["x", "y"]},
            "Transform": {
                "RequestBodyEncoding": "URL_ENCODED",
                "RequestEncodingOptions": {"ArrayFormat": "BRACKETS"},
            },
        },
    )
    assert result.status == "SUCCEEDED", result.cause
    seen = result.result["ResponseBody"]
    assert seen["headers"]["authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    assert seen["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert seen["body"] == "a%5Bb%5D=1&list%5B%5D=x&list%5B%5D=y"


def test_oauth_client_credentials_fetches_a_token_then_calls(
    aws: dict[str, Any], target: HttpTarget
) -> None:
    arn = connection(
        aws,
        "oauth",
        "OAUTH_CLIENT_CREDENTIALS",
        {
            "OAuthParameters": {
                "ClientParameters": {"ClientID": "cid", "ClientSecret": "csecret"},
                "AuthorizationEndpoint": f"{target.url}/token",
                "HttpMethod": "POST",
            },
            "InvocationHttpParameters": {
                "HeaderParameters": [{"Key": "X-Tenant", "Value": "t1", "IsValueSecret": True}]
            },
        },
    )
    tokens, calls = target.count("token"), target.count("inspect")
    result = run(
        aws,
        {
            "ApiEndpoint": f"{target.url}/inspect",
            "Method": "GET",
            "Authentication": {"ConnectionArn": arn},
        },
    )
    assert result.status == "SUCCEEDED", result.cause
    assert (target.count("token"), target.count("inspect")) == (tokens + 1, calls + 1)
    token_request = next(r for r in reversed(target.received) if r.path == "/token")
    assert (
        token_request.header("Authorization")
        == "Basic " + base64.b64encode(b"cid:csecret").decode()
    )
    assert b"grant_type=client_credentials" in token_request.body
    seen = result.result["ResponseBody"]
    assert seen["headers"]["authorization"] == "Bearer tok-123"
    assert seen["headers"]["x-tenant"] == "t1"


def test_a_non_2xx_status_fails_with_states_http_status_code(
    aws: dict[str, Any], target: HttpTarget
) -> None:
    before = target.count("status/404")
    retry = [{"ErrorEquals": ["States.Http.StatusCode.404"], "MaxAttempts": 1}]
    result = run(
        aws,
        {
            "ApiEndpoint": f"{target.url}/status/404",
            "Method": "GET",
            "Authentication": {"ConnectionArn": api_key(aws)},
        },
        Retry=retry,
    )
    assert result.error == "States.Http.StatusCode.404"
    assert json.loads(result.cause) == {"message": "Missing Authentication Token"}
    assert target.count("status/404") == before + 2


def test_an_unknown_connection_fails_before_any_request(
    aws: dict[str, Any], target: HttpTarget
) -> None:
    before = len(target.received)
    result = run(
        aws,
        {
            "ApiEndpoint": f"{target.url}/inspect",
            "Method": "GET",
            "Authentication": {
                "ConnectionArn": "arn:aws:events:us-east-1:123456789012:connection/nope/1234"
            },
        },
    )
    assert result.status == "FAILED"
    assert result.error == "Events.ConnectionResource.ResourceNotFoundException"
    assert len(target.received) == before


def test_an_unreachable_host_is_a_socket_error(aws: dict[str, Any]) -> None:
    result = run(
        aws,
        {
            "ApiEndpoint": "http://127.0.0.1:9/nothing",
            "Method": "GET",
            "Authentication": {"ConnectionArn": api_key(aws)},
        },
    )
    assert result.error == "States.Http.Socket"


def test_slow_server_past_timeout_seconds(aws: dict[str, Any], target: HttpTarget) -> None:
    result = run(
        aws,
        {
            "ApiEndpoint": f"{target.url}/slow/4",
            "Method": "GET",
            "Authentication": {"ConnectionArn": api_key(aws)},
        },
        TimeoutSeconds=1,
    )
    assert result.error == "States.Timeout"


@pytest.mark.parametrize(
    "parameters",
    [
        {"ApiEndpoint": "file:///etc/passwd", "Method": "GET"},
        {"ApiEndpoint": "https://example.com", "Method": "GET"},  # no connection
        {"ApiEndpoint": "https://example.com", "Method": "BREW"},
    ],
)
def test_bad_parameters_are_refused_without_a_request(
    aws: dict[str, Any], parameters: dict[str, Any]
) -> None:
    parameters = {**parameters}
    result = run(aws, parameters)
    assert result.error == "States.Runtime"


def test_header_injection_is_refused(aws: dict[str, Any], target: HttpTarget) -> None:
    before = len(target.received)
    result = run(
        aws,
        {
            "ApiEndpoint": f"{target.url}/inspect",
            "Method": "GET",
            "Authentication": {"ConnectionArn": api_key(aws)},
            "Headers": {"X-A": "v\r\nX-Injected: 1"},
        },
    )
    assert result.error == "States.Runtime"
    assert len(target.received) == before


def test_form_encoding_array_formats() -> None:
    value = {"a": [1, 2]}
    assert form_pairs(value, "INDICES") == [("a[0]", "1"), ("a[1]", "2")]
    assert form_pairs(value, "REPEAT") == [("a", "1"), ("a", "2")]
    assert form_pairs(value, "COMMAS") == [("a", "1,2")]
    assert form_pairs(value, "BRACKETS") == [("a[]", "1"), ("a[]", "2")]


def test_connection_name_of_an_arn() -> None:
    arn = "arn:aws:events:us-east-1:123456789012:connection/my-conn/abcd-ef"
    assert connection_name(arn) == "my-conn"
    assert connection_name("my-conn") == "my-conn"


@pytest.mark.parametrize(
    "secret",
    [
        "not json",
        "[1, 2]",
        '"text"',
        '{"client_parameters": "x"}',
        '{"api_key_name": "k", "api_key_value": "v", "invocation_http_parameters": "x"}',
        '{"api_key_name": "k", "api_key_value": "v",'
        ' "invocation_http_parameters": {"header_parameters": [1]}}',
    ],
)
def test_a_connection_secret_that_is_not_a_json_object_fails_the_task(
    aws: dict[str, Any], target: HttpTarget, secret: str
) -> None:
    # A malformed secret raised out of the integration (JSONDecodeError, AttributeError):
    # the task message came back until the DLQ instead of the task failing.
    arn = api_key(aws)
    described = aws["events"].describe_connection(Name=connection_name(arn))
    aws["secretsmanager"].put_secret_value(SecretId=described["SecretArn"], SecretString=secret)
    before = len(target.received)
    parameters = {"ApiEndpoint": target.url, "Method": "GET",
                  "Authentication": {"ConnectionArn": arn}}  # fmt: skip
    result = run(aws, parameters)
    assert result.status == "FAILED"
    assert result.error == "Events.ConnectionResource.InvalidConnectionState"
    assert secret not in (result.cause or "")  # the secret's text stays out of the history
    assert len(target.received) == before
