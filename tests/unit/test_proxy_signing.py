"""Signing for ``execute-api`` (offline): boto3 clients, hand-built requests, the proxy's checks."""

from __future__ import annotations

import os
from typing import Any

import pytest
import stepflow
from botocore.awsrequest import AWSResponse
from botocore.credentials import ReadOnlyCredentials
from click.testing import CliRunner
from stepflow.proxy.command import console_command, proxy_command
from stepflow.proxy.forward import Forwarder, ProxyServer, Upstream
from stepflow.proxy.signing import api_client, region_of, sign_request, signing_region

from tests.e2e.sigv4_gateway import refusal

GATEWAY = "https://abc123.execute-api.eu-west-1.amazonaws.com/v1/"


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials or region anywhere botocore looks (no IMDS either)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


class _Raw:
    def stream(self, **_: Any) -> Any:
        yield b'{"stateMachines": []}'


def _scope(sfn: Any) -> str:
    seen: list[str] = []

    def send(request: Any, **_: Any) -> AWSResponse:
        seen.append(request.headers["Authorization"].decode())
        return AWSResponse(request.url, 200, {}, _Raw())

    sfn.meta.events.register("before-send.sfn", send)
    sfn.list_state_machines()
    assert len(seen) == 1
    return seen[0].split("Credential=")[1].split(",")[0].split("/", 2)[2]


@pytest.mark.parametrize(
    ("url", "region"),
    [
        (GATEWAY, "eu-west-1"),
        ("https://x.execute-api.cn-north-1.amazonaws.com.cn/v1", "cn-north-1"),
        ("https://api.example.com/v1", None),
        ("https://execute-api.evil.example/", None),
        ("http://127.0.0.1:8080/", None),
    ],
)
def test_region_of(url: str, region: str | None) -> None:
    assert region_of(url) == region


def test_an_api_client_signs_for_execute_api_in_the_urls_region() -> None:
    sfn = api_client(GATEWAY, aws_access_key_id="AKID", aws_secret_access_key="s")
    assert _scope(sfn) == "eu-west-1/execute-api/aws4_request"
    assert sfn.meta.region_name == "eu-west-1"  # ReleaseTask signs with the client's region


def test_an_explicit_region_wins_and_a_custom_domain_needs_one(no_aws: None) -> None:
    sfn = api_client(
        "https://api.example.com/v1",
        region="ap-south-1",
        aws_access_key_id="AKID",
        aws_secret_access_key="s",
    )
    assert _scope(sfn) == "ap-south-1/execute-api/aws4_request"
    with pytest.raises(ValueError, match="--region"):
        signing_region("https://api.example.com/v1", None)


def test_stepflow_client_takes_the_region_from_the_gateway_url(no_aws: None) -> None:
    sfn = stepflow.client(
        GATEWAY, sigv4_api_gateway=True, aws_access_key_id="AKID", aws_secret_access_key="s"
    )
    assert _scope(sfn) == "eu-west-1/execute-api/aws4_request"


def test_sign_request_replaces_the_clients_signature() -> None:
    credentials = ReadOnlyCredentials("AKIDPROXY", "secret", "session-token")
    old = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=CLIENT/20250101/us-east-1/states/...",
        "X-Amz-Security-Token": "client-token",
        "X-Amz-Target": "AWSStepFunctions.ListStateMachines",
        "Content-Type": "application/x-amz-json-1.0",
    }
    url = "http://127.0.0.1:9/v1/"
    signed = sign_request(credentials, "eu-west-1", "POST", url, old, b"{}")
    assert "Credential=AKIDPROXY/" in signed["Authorization"]
    assert signed["X-Amz-Security-Token"] == "session-token"
    assert signed["X-Amz-Target"] == "AWSStepFunctions.ListStateMachines"
    signed["Host"] = "127.0.0.1:9"
    assert refusal("POST", "/v1/", signed, b"{}", {"AKIDPROXY": "secret"}, "eu-west-1") is None
    tampered = refusal("POST", "/v1/", signed, b"{ }", {"AKIDPROXY": "secret"}, "eu-west-1")
    assert tampered is not None and "does not match" in tampered


@pytest.mark.parametrize(
    ("api", "path", "url"),
    [
        (GATEWAY, "/", "https://abc123.execute-api.eu-west-1.amazonaws.com/v1/"),
        ("https://h.example/v1", "/x?y=1", "https://h.example/v1/x?y=1"),
        ("http://127.0.0.1:81", "/", "http://127.0.0.1:81/"),
    ],
)
def test_the_stage_path_is_added(api: str, path: str, url: str) -> None:
    assert Upstream.parse(api).url(path) == url


@pytest.mark.parametrize("api", ["ftp://h/", "h.example/v1", "https:///v1", "https://h/v1?x=1"])
def test_a_bad_api_url_is_refused(api: str) -> None:
    with pytest.raises(ValueError):
        Upstream.parse(api)


def test_a_non_loopback_bind_needs_to_be_asked_for() -> None:
    forwarder = Forwarder(Upstream.parse(GATEWAY), "eu-west-1", lambda: None)
    with pytest.raises(ValueError, match="loopback"):
        ProxyServer(forwarder, "0.0.0.0", 0)
    ProxyServer(forwarder, "0.0.0.0", 0, allow_remote=True).stop()


@pytest.mark.parametrize("command", [proxy_command, console_command])
def test_the_command_says_when_there_are_no_credentials(no_aws: None, command: Any) -> None:
    result = CliRunner().invoke(command, ["--api", GATEWAY, "--port", "0"])
    assert result.exit_code == 1
    assert "no AWS credentials found" in result.output


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--api", "not a url"], "--api"),
        (["--api", "https://api.example.com/v1"], "--region"),
        (["--api", GATEWAY, "--profile", "no-such-profile"], "--profile"),
        (["--api", GATEWAY, "--port", "70000"], "--port"),
    ],
)
def test_bad_input_is_a_usage_error(no_aws: None, args: list[str], said: str) -> None:
    result = CliRunner().invoke(proxy_command, args)
    assert result.exit_code == 2, result.output
    assert said in result.output


@pytest.mark.parametrize("flag", ["--api", "--endpoint-url"])
@pytest.mark.parametrize(
    ("argv", "scope"),
    [
        ([], "eu-west-1/execute-api/aws4_request"),  # the URL's region, not AWS_DEFAULT_REGION
        (["--region", "us-west-2"], "us-west-2/execute-api/aws4_request"),  # typed: it wins
    ],
)
def test_stepflow_worker_signs_an_api_gateway_url_for_its_region(
    monkeypatch: pytest.MonkeyPatch, flag: str, argv: list[str], scope: str
) -> None:
    from stepflow.cli.worker import worker_options
    from stepflow.worker import cli as worker_cli

    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    options = worker_options([flag, GATEWAY, "--activity", "a", "m:f", *argv])
    client = worker_cli._client(options)
    assert _scope(client._client) == scope
    assert client._signing_name == "execute-api"  # ReleaseTask too


def test_stepflow_worker_without_the_default_region_signs_for_the_urls(
    no_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepflow.cli.worker import worker_options
    from stepflow.worker import cli as worker_cli

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    options = worker_options(["--endpoint-url", GATEWAY, "--activity", "a", "m:f"])
    assert options.region == "us-east-1"  # the flag's default does not sign
    assert _scope(worker_cli._client(options)._client) == "eu-west-1/execute-api/aws4_request"


def test_stepflow_worker_refuses_api_with_endpoint_url(capsys: Any) -> None:
    from stepflow.cli import main

    argv = ["worker", "--api", GATEWAY, "--endpoint-url", "http://127.0.0.1:9", "--activity"]
    assert main([*argv, "a", "json:dumps"]) == 2
    assert "give --api or --endpoint-url, not both" in capsys.readouterr().err


def test_stepflow_worker_api_on_a_custom_domain_needs_a_region(no_aws: None, capsys: Any) -> None:
    from stepflow.cli import main

    argv = ["worker", "--api", "https://api.example.com/v1", "--activity", "a", "json:dumps"]
    assert main(argv) == 2
    assert "--region" in capsys.readouterr().err
