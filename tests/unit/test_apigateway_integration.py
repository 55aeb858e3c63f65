"""apigateway:invoke against a real local HTTP server, through the in-memory runtime.

Each case counts the requests the server received: one per task attempt.
The AWS-recorded cases (test_apigetway_task_service.py) are mirrored: the
server's ``id_func`` echoes the body as LocalStack's test API does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from stepflow.integrations import IntegrationInvoker, Registry
from stepflow.integrations.apigateway import ApiGatewayInvoke
from stepflow.integrations.http_port import HttpResponse, MemoryHttp, Urllib3Http
from stepflow.runtime.clients import FixedClients
from stepflow.testing import WorkflowEnvironment

from tests.unit.http_target import HttpTarget, http_target

RESOURCE = "arn:aws:states:::apigateway:invoke"
CREDS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token")


class FakeApiGatewayClient:
    """Stands in for the task role's boto3 client: only its credentials and region are read."""

    meta = SimpleNamespace(region_name="eu-west-1")

    def _get_credentials(self) -> Credentials:
        return CREDS


@pytest.fixture(scope="module")
def target() -> Iterator[HttpTarget]:
    with http_target() as running:
        yield running


def environment(http: Any = None) -> WorkflowEnvironment:
    registry = Registry()
    registry.register(ApiGatewayInvoke(http or Urllib3Http()))
    clients = FixedClients(apigateway=FakeApiGatewayClient())
    return WorkflowEnvironment(invoker=IntegrationInvoker(registry, clients))


def machine(parameters: dict[str, Any], **task: Any) -> dict[str, Any]:
    state = {"Type": "Task", "Resource": RESOURCE, "Parameters": parameters, "End": True}
    return {"StartAt": "ApiGatewayInvoke", "States": {"ApiGatewayInvoke": {**state, **task}}}


FROM_INPUT = {
    "ApiEndpoint.$": "$.ApiEndpoint",
    "Method.$": "$.Method",
    "Path.$": "$.Path",
    "Stage.$": "$.Stage",
    "RequestBody.$": "$.RequestBody",
}


def run(definition: dict[str, Any], input: Any, http: Any = None) -> Any:
    env = environment(http)
    arn = env.start(definition, input)
    env.run(arn)
    return env.result(arn)


def base_input(target: HttpTarget, **more: Any) -> dict[str, Any]:
    return {
        "ApiEndpoint": target.url,
        "Method": "POST",
        "Path": "id_func",
        "Stage": "sfn-apigw-api",
        **more,
    }


@pytest.mark.parametrize(
    "body",
    ['"HelloWorld"', "true", '{"message": "HelloWorld!"}', {"message": "HelloWorld!"}],
)
def test_body_post_is_sent_once_and_the_response_comes_back_in_aws_shape(
    target: HttpTarget, body: Any
) -> None:
    before = target.count("id_func")
    result = run(machine(FROM_INPUT), base_input(target, RequestBody=body))
    assert result.status == "SUCCEEDED", result.cause
    out = result.result
    assert target.count("id_func") == before + 1
    # As recorded on AWS: a string body is sent as a JSON string (the echo returns it whole).
    assert out["ResponseBody"] == body
    assert json.loads(target.received[-1].body) == body
    assert out["StatusCode"] == 200
    assert out["StatusText"] == "OK"
    assert out["Headers"]["Content-Type"] == ["application/json"]
    assert all(isinstance(v, list) for v in out["Headers"].values())
    sent = target.received[-1]
    assert sent.path == "/sfn-apigw-api/id_func"
    assert sent.header("Content-Type") == "application/json"
    assert sent.header("Accept") == "application/json"
    assert sent.header("Authorization") is None  # NO_AUTH by default


def test_query_parameters_and_list_headers_reach_the_server(target: HttpTarget) -> None:
    parameters = {**FROM_INPUT, "QueryParameters.$": "$.Q", "Headers.$": "$.H"}
    result = run(
        machine(parameters),
        base_input(
            target,
            Path="inspect",
            RequestBody={"m": 1},
            Q={"param1": ["Hello"], "param2": ["World", "Again"]},
            H={"custom_header": ["arrayHeader0", "arrayHeader1"]},
        ),
    )
    assert result.status == "SUCCEEDED", result.cause
    seen = result.result["ResponseBody"]
    assert seen["query"] == {"param1": ["Hello"], "param2": ["World", "Again"]}
    sent = [v for k, v in target.received[-1].headers if k == "custom_header"]
    assert sent == ["arrayHeader0", "arrayHeader1"]


def test_a_single_string_header_fails_as_aws_does_and_sends_nothing(target: HttpTarget) -> None:
    before = len(target.received)
    parameters = {**FROM_INPUT, "Headers.$": "$.Headers"}
    result = run(
        machine(parameters),
        base_input(target, RequestBody={"message": "HelloWorld!"}, Headers={"h": "single"}),
    )
    assert result.status == "FAILED"
    assert result.error == "States.Runtime"
    assert result.cause.endswith(
        "could not be used to start the Task: "
        "[The value of the field 'Headers' has an invalid format]"
    )
    assert len(target.received) == before


def test_an_error_status_fails_with_apigateway_status_and_the_body(target: HttpTarget) -> None:
    result = run(machine(FROM_INPUT), base_input(target, Path="status/403", RequestBody="x"))
    assert result.status == "FAILED"
    assert result.error == "ApiGateway.403"
    assert json.loads(result.cause) == {"message": "Missing Authentication Token"}


def test_retries_send_exactly_one_request_per_attempt(target: HttpTarget) -> None:
    before = target.count("status/500")
    retry = [{"ErrorEquals": ["ApiGateway.500"], "MaxAttempts": 2, "IntervalSeconds": 1}]
    result = run(
        machine(FROM_INPUT, Retry=retry), base_input(target, Path="status/500", RequestBody={})
    )
    assert result.error == "ApiGateway.500"
    assert target.count("status/500") == before + 3


def test_null_values_are_dropped_unless_allowed(target: HttpTarget) -> None:
    body = {"a": None, "b": {"c": None, "d": 1}}
    dropped = run(machine(FROM_INPUT), base_input(target, RequestBody=body))
    assert dropped.result["ResponseBody"] == {"b": {"d": 1}}
    parameters = {**FROM_INPUT, "AllowNullValues": True}
    kept = run(machine(parameters), base_input(target, RequestBody=body))
    assert kept.result["ResponseBody"] == body


def test_a_non_json_body_comes_back_as_text(target: HttpTarget) -> None:
    result = run(machine(FROM_INPUT), base_input(target, Path="text", RequestBody={}))
    assert result.result["ResponseBody"] == "not json {"


def test_iam_role_signs_with_sigv4_for_execute_api(target: HttpTarget) -> None:
    parameters = {**FROM_INPUT, "AuthType": "IAM_ROLE", "QueryParameters": {"q": ["a b"]}}
    result = run(machine(parameters), base_input(target, Path="id_func", RequestBody={"k": 1}))
    assert result.status == "SUCCEEDED", result.cause
    sent = target.received[-1]
    authorization = sent.header("Authorization")
    assert authorization is not None and authorization.startswith("AWS4-HMAC-SHA256 ")
    assert "/eu-west-1/execute-api/aws4_request" in authorization
    assert sent.header("X-Amz-Security-Token") == "session-token"
    # Recompute the signature from what the server received.
    signed_names = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    headers = {k: v for k, v in sent.headers if k.lower() in signed_names}
    url = f"{target.url}{sent.path}?q=a%20b"
    again = AWSRequest(method="POST", url=url, data=sent.body, headers=headers)
    again.context["timestamp"] = sent.header("X-Amz-Date")
    auth = SigV4Auth(CREDS.get_frozen_credentials(), "execute-api", "eu-west-1")
    canonical = auth.canonical_request(again)
    signature = auth.signature(auth.string_to_sign(again, canonical), again)
    assert authorization.endswith(f"Signature={signature}")
    # A tampered body does not verify.
    again.data = sent.body + b" "
    other = auth.signature(auth.string_to_sign(again, auth.canonical_request(again)), again)
    assert other != signature


def test_signing_region_comes_from_an_execute_api_host() -> None:
    memory = MemoryHttp()
    memory.routes["https://abc123.execute-api.ap-south-1.amazonaws.com/"] = lambda r: HttpResponse(
        200, "OK", (("Content-Type", "application/json"),), b"{}"
    )
    parameters = {
        "ApiEndpoint": "abc123.execute-api.ap-south-1.amazonaws.com",
        "Method": "GET",
        "Stage": "prod",
        "Path": "/items/1",
        "AuthType": "RESOURCE_POLICY",
    }
    result = run(machine(parameters), {}, memory)
    assert result.status == "SUCCEEDED", result.cause
    (sent,) = memory.sent
    assert sent.url == "https://abc123.execute-api.ap-south-1.amazonaws.com/prod/items/1"
    authorization = dict(sent.headers)["Authorization"]
    assert "/ap-south-1/execute-api/aws4_request" in authorization


def test_a_response_over_the_payload_limit_fails_with_data_limit_exceeded(
    target: HttpTarget,
) -> None:
    result = run(machine(FROM_INPUT), base_input(target, Path="huge/300000", RequestBody={}))
    assert result.status == "FAILED"
    assert result.error == "States.DataLimitExceeded"


@pytest.mark.parametrize(
    ("name", "value"),
    [("X-Evil", "a\r\nInjected: yes"), ("X-Evil\r\nInjected", "v"), ("Host", "evil")],
)
def test_header_injection_is_refused_before_sending(
    target: HttpTarget, name: str, value: str
) -> None:
    before = len(target.received)
    parameters = {**FROM_INPUT, "Headers": {name: [value]}}
    result = run(machine(parameters), base_input(target, RequestBody={}))
    assert result.status == "FAILED"
    assert result.error == "States.Runtime"
    assert len(target.received) == before


@pytest.mark.parametrize(
    "endpoint",
    [
        "file:///etc/passwd",
        "ftp://example.com",
        "gopher://x",
        "http://169.254.169.254",
        "http://[fd00:ec2::254]",
    ],
)
def test_a_non_http_endpoint_is_refused(endpoint: str) -> None:
    memory = MemoryHttp()
    parameters = {"ApiEndpoint": endpoint, "Method": "GET"}
    result = run(machine(parameters), {}, memory)
    assert result.status == "FAILED"
    assert result.error == "States.Runtime"
    assert "not an http(s) URL" in result.cause or "link-local" in result.cause
    assert memory.sent == []


def test_a_redirect_is_not_followed(target: HttpTarget) -> None:
    landings = target.count("landing")
    result = run(machine(FROM_INPUT), base_input(target, Path="redirect", RequestBody={}))
    assert result.status == "SUCCEEDED", result.cause
    assert result.result["StatusCode"] == 302
    assert result.result["Headers"]["Location"][0].endswith("/landing")
    assert target.count("landing") == landings


def test_a_slow_server_past_timeout_seconds_times_out_the_task(target: HttpTarget) -> None:
    before = target.count("slow")
    result = run(
        machine(FROM_INPUT, TimeoutSeconds=1), base_input(target, Path="slow/6", RequestBody={})
    )
    assert result.status == "FAILED"
    assert result.error == "States.Timeout"
    assert target.count("slow") == before + 1
    # The client gave up while the server was still working: it did not wait for the answer.
    assert "/sfn-apigw-api/slow/6" not in target.answered


def test_wait_for_token_sends_once_and_waits_for_the_token(target: HttpTarget) -> None:
    parameters = {k: v for k, v in FROM_INPUT.items() if k != "RequestBody.$"}
    parameters["RequestBody"] = {"token.$": "$$.Task.Token"}
    definition = machine(parameters)
    definition["States"]["ApiGatewayInvoke"]["Resource"] = RESOURCE + ".waitForTaskToken"
    env = environment()
    before = target.count("id_func")
    arn = env.start(definition, base_input(target))
    env.run(arn, skip_open_tasks=True)
    assert target.count("id_func") == before + 1
    token = json.loads(target.received[-1].body)["token"]
    env.complete(token, {"done": True})
    env.run(arn)
    result = env.result(arn)
    assert result.status == "SUCCEEDED", result.cause
    assert result.result == {"done": True}
    types = [e["type"] for e in result.history]
    assert "TaskSubmitted" in types
    assert target.count("id_func") == before + 1


def test_validation_names_the_action() -> None:
    integration = ApiGatewayInvoke(MemoryHttp())
    assert integration.check("invoke", "request-response") is None
    assert integration.check("get", "request-response") is not None


def test_a_body_past_the_read_cap_is_abandoned_with_data_limit_exceeded(
    target: HttpTarget,
) -> None:
    small = Urllib3Http(max_body_bytes=1000)
    result = run(machine(FROM_INPUT), base_input(target, Path="huge/5000", RequestBody={}), small)
    assert result.error == "States.DataLimitExceeded"
    assert "larger than 1000 bytes" in result.cause
