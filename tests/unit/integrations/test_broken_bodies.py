"""A response body that breaks while it is read fails the task; it never raises out.

botocore reads a streaming body (S3 GetObject's ``Body``, Lambda's ``Payload``,
Bedrock's ``body``) after the call returned; a connection that times out or
resets meanwhile raises botocore's ReadTimeoutError / ResponseStreamingError
there, outside the call's ``try``. Raised out of the integration, the task
message came back until the DLQ. These tests hand each integration a response
whose body breaks on read.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError, ResponseStreamingError
from stepflow.runtime.clients import FixedClients

from tests.moto_env import REGION
from tests.unit.integrations.helpers import body, invoker

BREAKS = [
    ReadTimeoutError(endpoint_url="https://service.example"),
    ResponseStreamingError(error="connection reset"),
]


class BrokenBody:
    """A streaming body whose read fails as botocore's fails."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def read(self, *_: Any) -> bytes:
        raise self.error


def _client(service: str, method: str, response: dict[str, Any]) -> Any:
    client = boto3.client(
        service, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    setattr(client, method, lambda **_: response)
    return client


@pytest.mark.parametrize("error", BREAKS, ids=type)
def test_an_s3_body_that_breaks_fails_the_sdk_task(error: Exception) -> None:
    s3 = _client("s3", "get_object", {"Body": BrokenBody(error), "ContentLength": 3})
    resource = "arn:aws:states:::aws-sdk:s3:getObject"
    outcome = invoker(FixedClients(s3=s3))(body(resource, {"Bucket": "b", "Key": "k"}))
    assert not outcome.ok
    assert outcome.error == "S3.SdkClientException"


@pytest.mark.parametrize("error", BREAKS, ids=type)
@pytest.mark.parametrize(
    "resource",
    ["arn:aws:states:::lambda:invoke", "arn:aws:lambda:us-east-1:123456789012:function:f"],
)
def test_a_lambda_payload_that_breaks_fails_the_task(error: Exception, resource: str) -> None:
    response = {"StatusCode": 200, "Payload": BrokenBody(error)}
    lam = _client("lambda", "invoke", response)
    outcome = invoker(FixedClients(**{"lambda": lam}))(body(resource, {"FunctionName": "f"}))
    assert not outcome.ok
    assert outcome.error == "Lambda.SdkClientException"


@pytest.mark.parametrize("error", BREAKS, ids=type)
def test_a_bedrock_body_that_breaks_fails_the_task(error: Exception) -> None:
    response = {"body": BrokenBody(error), "contentType": "application/json"}
    bedrock = _client("bedrock-runtime", "invoke_model", response)
    parameters = {"ModelId": "m", "Body": {"prompt": "hi"}}
    outcome = invoker(FixedClients(**{"bedrock-runtime": bedrock}))(
        body("arn:aws:states:::bedrock:invokeModel", parameters)
    )
    assert not outcome.ok
    assert outcome.error == "Bedrock.SdkClientException"
