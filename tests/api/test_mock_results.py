"""TestState's fieldValidationMode: mocked Task results against the API's response model.

GIVEN Tasks on optimized and ``aws-sdk`` integrations, WHEN TestState is called
with mocked results that break the operation's response model (types,
required members, enumerations, lengths, ranges) under STRICT, PRESENT and
NONE, THEN the refusals are AWS's ValidationException messages, and results
the model allows (unknown members, a Lambda's Payload) pass.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from stepflow.api import ApiError

from tests.api.conftest import Api

ARN = "arn:aws:states:::"


def mocked(api: Api, resource: str, result: Any, mode: str | None = None) -> str | None:
    """The ValidationException message of the call, or None when it succeeds."""
    mock: dict[str, Any] = {"result": json.dumps(result)}
    if mode is not None:
        mock["fieldValidationMode"] = mode
    state = {"Type": "Task", "Resource": ARN + resource, "End": True}
    try:
        done = api("TestState", definition=json.dumps(state), mock=mock)
    except ApiError as exc:
        assert exc.code == "ValidationException"
        return exc.message.removeprefix("Mock result schema validation error: ")
    assert done["status"] == "SUCCEEDED" and json.loads(done["output"]) == result
    return None


@pytest.mark.parametrize(
    ("resource", "result", "message"),
    [
        ("lambda:invoke", {"StatusCode": "200"}, "Field 'StatusCode' must be a number"),
        ("lambda:invoke", {"StatusCode": True}, "Field 'StatusCode' must be a number"),
        ("states:startExecution", {}, "Required field 'ExecutionArn' is missing"),
        (
            "states:startExecution",
            {"executionArn": "a", "startDate": "d"},
            "Required field 'ExecutionArn' is missing",
        ),
        (
            "states:startExecution",
            {"ExecutionArn": "a", "StartDate": True},
            "Field 'StartDate' must be a string",
        ),
        ("aws-sdk:s3:getObject", {"ContentLength": "5"}, "Field 'ContentLength' must be a number"),
        (
            "aws-sdk:s3:getObject",
            {"StorageClass": "NOPE"},
            "Field 'StorageClass' is not an expected value",
        ),
        ("aws-sdk:kms:encrypt", {"CiphertextBlob": 5}, "Field 'CiphertextBlob' must be a string"),
        (
            "aws-sdk:kms:encrypt",
            {"CiphertextBlob": ""},
            "Field 'CiphertextBlob' is smaller than the minimum length",
        ),
        (
            "aws-sdk:lambda:getFunction",
            {"Configuration": {"MemorySize": 1}},
            "Field 'MemorySize' is less than the minimum value",
        ),
        (
            "aws-sdk:lambda:getFunction",
            {"Configuration": {"MemorySize": 10**9}},
            "Field 'MemorySize' exceeds the maximum value",
        ),
        ("events:putEvents", {"Entries": "x"}, "Field 'Entries' must be an array"),
        (
            "events:putEvents",
            {"Entries": [{"EventId": "1"}, {"EventId": 2}]},
            "Field 'EventId' must be a string",
        ),
        ("sqs:sendMessage", [], "Field 'result' must be an object"),
    ],
)
def test_strict_refuses_what_the_model_does_not_allow(
    api: Api, resource: str, result: Any, message: str
) -> None:
    assert mocked(api, resource, result) == message
    assert mocked(api, resource, result, "STRICT") == message
    assert mocked(api, resource, result, "NONE") is None


def test_present_checks_only_the_members_given(api: Api) -> None:
    assert mocked(api, "states:startExecution", {}, "PRESENT") is None
    start = {"ExecutionArn": "a", "StartDate": 5}
    assert (
        mocked(api, "states:startExecution", start, "PRESENT")
        == "Field 'StartDate' must be a string"
    )


def test_what_the_model_allows_or_does_not_cover(api: Api) -> None:
    assert mocked(api, "lambda:invoke", {"random": "json"}) is None  # unknown members pass
    assert mocked(api, "lambda:invoke", {"Payload": {"any": [1]}, "StatusCode": 200}) is None
    assert (
        mocked(
            api, "states:startExecution", {"ExecutionArn": "a", "StartDate": "2024-01-01T00:00:00Z"}
        )
        is None
    )
    assert mocked(api, "states:startExecution.sync", {"anything": 1}) is None  # a Describe's output
    assert mocked(api, "sqs:sendMessage.waitForTaskToken", "callback") is None
