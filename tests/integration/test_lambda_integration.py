"""The Lambda integration (function ARNs, ``lambda:invoke``), against a stubbed Lambda client.

moto's Lambda needs Docker to run functions, so the client is a small fake
that records requests and returns responses shaped like botocore's.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from botocore.exceptions import (  # type: ignore[import-untyped]
    ClientError,
    EndpointConnectionError,
)
from stepflow.integrations import IntegrationInvoker, default_registry
from stepflow.runtime.clients import FixedClients
from stepflow.runtime.outcome import TaskOutcome

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"

FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:validate"
HEADERS = {"x-amzn-requestid": "req-1", "content-type": "application/json"}


def fields(outcome: TaskOutcome) -> tuple[Any, ...]:
    """``(ok, output, error, cause)`` of an outcome (which has more fields since ``.sync``)."""
    return (outcome.ok, outcome.output, outcome.error, outcome.cause)


class FakeLambda:
    """Answers Invoke with a canned payload (or raises), recording each request."""

    def __init__(
        self, payload: Any = None, function_error: str | None = None, raises: Any = None
    ) -> None:
        self.payload, self.function_error, self.raises = payload, function_error, raises
        self.requests: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(kwargs)
        if self.raises is not None:
            raise self.raises
        response: dict[str, Any] = {
            "StatusCode": 200,
            "ExecutedVersion": "$LATEST",
            "Payload": io.BytesIO(json.dumps(self.payload).encode()),
            "ResponseMetadata": {
                "RequestId": "req-1",
                "HTTPStatusCode": 200,
                "HTTPHeaders": HEADERS,
            },
        }
        if self.function_error:
            response["FunctionError"] = self.function_error
        return response


def LambdaInvoker(fake: FakeLambda) -> IntegrationInvoker:  # noqa: N802 (the old name, kept)
    """The runtime's invoker with ``fake`` as every task's Lambda client."""
    return IntegrationInvoker(default_registry(), FixedClients(**{"lambda": fake}))


def body(resource: str, task_input: Any) -> dict[str, Any]:
    return {"task_id": "Validate#1", "resource": resource, "input": task_input, "state_name": "V"}


ERROR_PAYLOAD = {"errorMessage": "no stock", "errorType": "OutOfStock", "stackTrace": ["x"]}


def test_a_function_arn_is_invoked_with_the_input_and_returns_the_payload() -> None:
    # GIVEN a function that answers {"valid": true}
    fake = FakeLambda({"valid": True})
    # WHEN a task on its ARN runs
    outcome = LambdaInvoker(fake)(body(FUNCTION, {"order": 7}))
    # THEN the input was the payload and the output is the parsed response
    assert fields(outcome) == (True, {"valid": True}, None, None)
    (request,) = fake.requests
    assert request["FunctionName"] == FUNCTION
    assert json.loads(request["Payload"]) == {"order": 7}


def test_a_qualified_function_arn_is_invoked_as_given() -> None:
    fake = FakeLambda(3)
    assert fields(LambdaInvoker(fake)(body(FUNCTION + ":live", 1))) == (True, 3, None, None)
    assert fake.requests[0]["FunctionName"] == FUNCTION + ":live"


def test_a_function_error_fails_the_task_like_step_functions() -> None:
    # GIVEN a function that raises OutOfStock
    fake = FakeLambda(ERROR_PAYLOAD, function_error="Unhandled")
    # WHEN the task runs
    ok, output, error, cause = fields(LambdaInvoker(fake)(body(FUNCTION, {})))
    # THEN it fails with the errorType and the error payload's JSON as the cause
    assert (ok, output, error) == (False, None, "OutOfStock")
    assert cause is not None and json.loads(cause) == ERROR_PAYLOAD


def test_a_function_error_without_an_error_type_is_lambda_unknown() -> None:
    fake = FakeLambda({"errorMessage": "Task timed out after 3.00 seconds"}, "Unhandled")
    ok, _, error, cause = fields(LambdaInvoker(fake)(body(FUNCTION, {})))
    assert (ok, error) == (False, "Lambda.Unknown")
    assert cause is not None and "timed out" in cause


def test_lambda_invoke_takes_the_request_from_the_input_and_returns_the_envelope() -> None:
    # GIVEN the lambda:invoke integration with FunctionName and Payload parameters
    fake = FakeLambda({"total": 42})
    task_input = {"FunctionName": FUNCTION, "Payload": {"order": 7}, "Qualifier": "live"}
    # WHEN it runs
    ok, output, error, cause = fields(LambdaInvoker(fake)(body(LAMBDA_INVOKE, task_input)))
    # THEN the request is built from the input
    (request,) = fake.requests
    assert request["FunctionName"] == FUNCTION and request["Qualifier"] == "live"
    assert json.loads(request["Payload"]) == {"order": 7}
    # AND the output is Step Functions' response envelope
    assert (ok, error, cause) == (True, None, None)
    assert output == {
        "ExecutedVersion": "$LATEST",
        "Payload": {"total": 42},
        "SdkHttpMetadata": {
            "AllHttpHeaders": {k: [v] for k, v in HEADERS.items()},
            "HttpHeaders": HEADERS,
            "HttpStatusCode": 200,
        },
        "SdkResponseMetadata": {"RequestId": "req-1"},
        "StatusCode": 200,
    }


def test_lambda_invoke_with_a_function_error_fails_with_the_error_type() -> None:
    fake = FakeLambda(ERROR_PAYLOAD, function_error="Handled")
    ok, _, error, cause = fields(
        LambdaInvoker(fake)(body(LAMBDA_INVOKE, {"FunctionName": "validate"}))
    )
    assert (ok, error) == (False, "OutOfStock")
    assert cause is not None and json.loads(cause) == ERROR_PAYLOAD
    assert fake.requests[0]["Payload"] == b"{}"


def test_lambda_invoke_without_a_function_name_is_a_runtime_error() -> None:
    fake = FakeLambda()
    assert fields(LambdaInvoker(fake)(body(LAMBDA_INVOKE, {"Payload": 1})))[:3] == (
        False,
        None,
        "States.Runtime",
    )
    assert fake.requests == []


def test_a_lambda_service_error_fails_the_task_with_a_lambda_error_name() -> None:
    # GIVEN Lambda throttles the invocation
    throttled = ClientError(
        {
            "Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"},
            "ResponseMetadata": {"HTTPStatusCode": 429},
        },
        "Invoke",
    )
    # WHEN the task runs THEN it fails with Lambda.<Code>, so a Retry can match it
    ok, _, error, cause = fields(LambdaInvoker(FakeLambda(raises=throttled))(body(FUNCTION, {})))
    assert (ok, error) == (False, "Lambda.TooManyRequestsException")
    assert cause is not None and "Rate exceeded" in cause and "429" in cause


def test_a_connection_failure_is_an_sdk_client_exception() -> None:
    down = EndpointConnectionError(endpoint_url="https://lambda")
    ok, _, error, _ = fields(LambdaInvoker(FakeLambda(raises=down))(body(FUNCTION, {})))
    assert (ok, error) == (False, "Lambda.SdkClientException")


@pytest.mark.parametrize(
    "resource",
    [
        "arn:aws:states:::lambda:invokeAsync",
        "arn:aws:states:::lambda:invoke.sync",
        "arn:aws:states:us-east-1:123456789012:activity:pack",
        "validate",
    ],
)
def test_resources_without_an_integration_fail_naming_the_resource(resource: str) -> None:
    fake = FakeLambda()
    ok, _, error, cause = fields(LambdaInvoker(fake)(body(resource, {})))
    assert (ok, error) == (False, "States.Runtime")
    assert cause is not None and f"StepFlow cannot run the Task resource {resource!r}" in cause
    assert fake.requests == []


@pytest.mark.parametrize(
    ("payload", "sent"),
    [
        ('{"order": 7}', b'{"order": 7}'),  # JSON text: as is, not encoded again
        ("not json at all", b"not json at all"),  # Lambda itself refuses it, not StepFlow
        ({"order": 7}, b'{"order":7}'),
        ([1, "a"], b'[1,"a"]'),
        (None, b"null"),
    ],
)
def test_lambda_invoke_sends_a_string_payload_as_is_and_encodes_the_rest(
    payload: Any, sent: bytes
) -> None:
    fake = FakeLambda({"ok": True})
    request = {"FunctionName": "validate", "Payload": payload}
    assert LambdaInvoker(fake)(body(LAMBDA_INVOKE, request)).ok
    assert [r["Payload"] for r in fake.requests] == [sent]


def test_lambda_invoke_without_a_payload_sends_an_empty_object() -> None:
    fake = FakeLambda({"ok": True})
    assert LambdaInvoker(fake)(body(LAMBDA_INVOKE, {"FunctionName": "validate"})).ok
    assert [r["Payload"] for r in fake.requests] == [b"{}"]


def test_lambda_invoke_wait_for_task_token_invokes_once_and_answers_the_envelope() -> None:
    fake = FakeLambda(None)
    request = {"FunctionName": FUNCTION, "Payload": {"token": "t"}}
    outcome = LambdaInvoker(fake)(body(LAMBDA_INVOKE + ".waitForTaskToken", request))
    assert outcome.ok and outcome.output["StatusCode"] == 200
    assert [json.loads(r["Payload"]) for r in fake.requests] == [{"token": "t"}]


def test_a_function_name_that_is_not_a_string_is_a_runtime_error() -> None:
    fake = FakeLambda()
    outcome = LambdaInvoker(fake)(body(LAMBDA_INVOKE, {"FunctionName": ["f"]}))
    assert (outcome.ok, outcome.error) == (False, "States.Runtime")
    assert fake.requests == []


class RawLambda(FakeLambda):
    """Answers Invoke with raw payload bytes (not necessarily JSON)."""

    def __init__(self, raw: bytes) -> None:
        super().__init__()
        self.raw = raw

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        response = super().invoke(**kwargs)
        response["Payload"] = io.BytesIO(self.raw)
        return response


@pytest.mark.parametrize(
    "raw",
    [b"[" * 100_000 + b"]" * 100_000, b'{"a": "\xff\xfe"}', b"[" * 100_000],
    ids=["deep", "not-utf8", "deep-invalid"],
)
def test_a_result_no_parser_should_read_fails_the_task_instead_of_raising(raw: bytes) -> None:
    # review: json.loads raised RecursionError on a 100,000-deep result and the decode
    # UnicodeDecodeError on bytes that are not UTF-8; both escaped the invoker, so the
    # task message was redelivered until the DLQ and the execution stayed RUNNING
    fake = RawLambda(raw)
    outcome = LambdaInvoker(fake)(body(FUNCTION, {}))
    assert not outcome.ok
    assert outcome.error == "States.Runtime", outcome
    assert len(fake.requests) == 1
