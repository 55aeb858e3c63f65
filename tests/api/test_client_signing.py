"""stepflow.client signs for execute-api when asked, for states otherwise (offline)."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import stepflow
from botocore.awsrequest import AWSResponse


class _Captured:
    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.url = ""

    def __call__(self, request: Any, **_: Any) -> AWSResponse:
        self.headers = {
            k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()
        }
        self.url = request.url
        raw = type("Raw", (), {"stream": lambda self, **_: iter([b'{"stateMachines": []}'])})()
        return AWSResponse(request.url, 200, {}, raw)


@pytest.mark.parametrize(("api_gateway", "service"), [(True, "execute-api"), (False, "states")])
def test_signing_name(api_gateway: bool, service: str) -> None:
    sfn = stepflow.client(
        "https://abc.execute-api.eu-west-1.amazonaws.com/prod",
        region="eu-west-1",
        sigv4_api_gateway=api_gateway,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
    )
    captured = _Captured()
    sfn.meta.events.register("before-send.sfn", captured)
    assert sfn.list_state_machines()["stateMachines"] == []
    credential = captured.headers["Authorization"].split("Credential=")[1].split(",")[0]
    assert credential.endswith(f"/eu-west-1/{service}/aws4_request")
    assert captured.headers["X-Amz-Target"] == "AWSStepFunctions.ListStateMachines"


def test_sync_execution_keeps_the_endpoint_host() -> None:
    sfn = stepflow.client(
        "http://localhost:9999",
        region="us-east-1",
        aws_access_key_id="a",
        aws_secret_access_key="b",
    )
    captured = _Captured()
    sfn.meta.events.register("before-send.sfn", captured)
    # The canned body does not fit this operation; only the URL matters.
    with contextlib.suppress(Exception):
        sfn.start_sync_execution(stateMachineArn="arn:aws:states:us-east-1:1:stateMachine:M")
    assert captured.url.startswith("http://localhost:9999")
