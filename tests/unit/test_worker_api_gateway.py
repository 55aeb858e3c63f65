"""A worker pointed at a deployed stack's API Gateway URL signs for ``execute-api``.

API Gateway's IAM authorization checks the SigV4 service name: a request signed for
``states`` (boto3's default) is refused, so a worker service (stepflow_cdk.cells) could
never lease a task. Every call is checked, ReleaseTask (signed by hand) included.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from stepflow.worker.cli import api_client, is_api_gateway

GATEWAY = "https://abc123.execute-api.eu-west-1.amazonaws.com/v1/"


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def _scopes(endpoint: str) -> list[str]:
    client = api_client(endpoint, "eu-west-1")
    seen: list[str] = []

    def send(request: Any, **_: Any) -> AWSResponse:
        seen.append(request.headers["Authorization"].decode().split("Credential=")[1])
        return AWSResponse(request.url, 200, {}, _Raw(b'{"activities": []}'))

    client.meta.events.register("before-send.sfn", send)
    client.list_activities()
    return [scope.split(",")[0].split("/", 2)[2] for scope in seen]


def test_a_gateway_endpoint_is_signed_for_execute_api(credentials: None) -> None:
    assert _scopes(GATEWAY) == ["eu-west-1/execute-api/aws4_request"]
    assert api_client(GATEWAY, "eu-west-1")._signing_name == "execute-api"


def test_a_local_endpoint_is_signed_for_states(credentials: None) -> None:
    assert _scopes("http://127.0.0.1:8083") == ["eu-west-1/states/aws4_request"]
    assert api_client("http://127.0.0.1:8083", "eu-west-1")._signing_name == "states"


@pytest.mark.parametrize(
    ("url", "gateway"),
    [
        (GATEWAY, True),
        ("https://x.execute-api.cn-north-1.amazonaws.com.cn/v1/", True),
        ("https://execute-api.evil.example/", False),
        ("https://states.eu-west-1.amazonaws.com", False),
        (None, False),
        ("not a url", False),
    ],
)
def test_which_endpoints_are_api_gateway(url: str | None, gateway: bool) -> None:
    assert is_api_gateway(url) is gateway
