"""``stepflow local``'s banner: the calls it shows, and the host prefix setting it names.

GIVEN the installed botocore, WHEN a Step Functions client built as the banner
says calls StartSyncExecution and TestState, THEN the request goes to the
endpoint's own host (without the setting: to ``sync-<host>``, which does not
resolve for ``127.0.0.1``). Requests are captured before they are sent.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from stepflow.local.banner import HOST_PREFIX_VARIABLE, banner_lines

URL = "http://127.0.0.1:8765"


class _Raw:
    def stream(self, **_: Any) -> Any:
        yield b"{}"


def hosts(monkeypatch: pytest.MonkeyPatch, setting: str | None, **kwargs: Any) -> list[str]:
    """The URL each sync operation is sent to (answered ``{}`` without a network)."""
    if setting is None:
        monkeypatch.delenv(HOST_PREFIX_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(HOST_PREFIX_VARIABLE, setting)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    sfn = boto3.client(
        "stepfunctions",
        endpoint_url=URL,
        region_name="us-east-1",
        aws_access_key_id="k",
        aws_secret_access_key="s",
        **kwargs,
    )
    seen: list[str] = []

    def capture(request: Any, **_: Any) -> AWSResponse:
        seen.append(request.url)
        return AWSResponse(request.url, 200, {}, _Raw())

    sfn.meta.events.register("before-send.sfn", capture)
    sfn.start_sync_execution(stateMachineArn="arn:aws:states:us-east-1:0:stateMachine:m")
    sfn.test_state(definition="{}")
    return seen


def test_the_banner_names_the_endpoint_and_the_setting() -> None:
    lines = banner_lines(URL, ["stepflow worker --cells MODULE --queue q"])
    assert lines.pop(0) == f"  console: {URL}/console/"
    assert lines[0] == f"  aws stepfunctions list-state-machines --endpoint-url {URL}"
    assert lines[1] == f"  boto3.client('stepfunctions', endpoint_url='{URL}')"
    assert f"export {HOST_PREFIX_VARIABLE}=true" in lines[2]
    assert "inject_host_prefix=False" in lines[3] and f"stepflow.client('{URL}')" in lines[3]
    assert lines[4:] == ["  stepflow worker --cells MODULE --queue q"]
    assert all(len(line) <= 100 for line in lines[:4])


def test_the_setting_the_banner_gives_keeps_requests_on_the_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefixed = "http://sync-127.0.0.1:8765/"
    assert hosts(monkeypatch, None) == [prefixed, prefixed]
    assert hosts(monkeypatch, "true") == [f"{URL}/", f"{URL}/"]
    config = Config(inject_host_prefix=False)
    assert hosts(monkeypatch, None, config=config) == [f"{URL}/", f"{URL}/"]
