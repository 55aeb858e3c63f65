"""The one error naming and output translation every AWS-call integration uses.

What AWS shows differently (optimized vs ``aws-sdk``) is a parameter of one
mechanism: these tests pin each form on botocore's real service models.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import botocore.session
from botocore.exceptions import ClientError, NoCredentialsError
from stepflow.integrations.aws_sdk_shapes import SDK_V1, SDK_V2, to_output
from stepflow.integrations.errors import ErrorNames, parameters_refused
from stepflow.integrations.metadata import sdk_metadata


def model(service: str) -> Any:
    return botocore.session.get_session().get_service_model(service)


def client_error(code: str, status: int = 400, host: str | None = None) -> ClientError:
    metadata: dict[str, Any] = {"HTTPStatusCode": status, "RequestId": "req-1"}
    if host:
        metadata["HostId"] = host
    response: Any = {"Error": {"Code": code, "Message": "it failed"}, "ResponseMetadata": metadata}
    return ClientError(response, "Op")


def test_code_naming_keeps_the_error_code_with_the_v1_cause() -> None:
    # GIVEN the optimized Lambda naming WHEN Lambda throttles
    outcome = ErrorNames("Lambda", "AWSLambda").failure(
        client_error("TooManyRequestsException", 429)
    )
    # THEN the error is the code, the cause the SDK for Java v1's text
    assert outcome is not None
    assert outcome.error == "Lambda.TooManyRequestsException"
    assert outcome.cause == (
        "it failed (Service: AWSLambda; Status Code: 429; Error Code: TooManyRequestsException; "
        "Request ID: req-1; Proxy: null)"
    )


def test_modeled_naming_uses_the_models_exception_else_the_base_class() -> None:
    sns = ErrorNames("SNS", "AmazonSNS", "modeled", "AmazonSNSException")
    found = sns.failure(client_error("NotFound", 404), model("sns"))
    unmodelled = sns.failure(client_error("SomethingNew"), model("sns"))
    assert found is not None and found.error == "SNS.NotFoundException"
    assert unmodelled is not None and unmodelled.error == "SNS.AmazonSNSException"
    assert "Error Code: SomethingNew" in str(unmodelled.cause)


def test_suffixed_naming_is_the_sdk_v2_class_with_the_v2_cause() -> None:
    s3 = ErrorNames("S3", naming="suffixed", base_exception="S3Exception")
    found = s3.failure(client_error("NoSuchKey", 404, host="h-1"), model("s3"))
    unmodelled = s3.failure(client_error("SomethingNew"), model("s3"))
    assert found is not None and found.error == "S3.NoSuchKeyException"
    assert found.cause == (
        "it failed (Service: S3, Status Code: 404, Request ID: req-1, "
        "Extended Request ID: h-1) (SDK Attempt Count: 1)"
    )
    assert unmodelled is not None and unmodelled.error == "S3.S3Exception"


def test_a_client_failure_is_sdk_client_exception_and_anything_else_is_not_named() -> None:
    names = ErrorNames("DynamoDB", "AmazonDynamoDBv2", "modeled", "AmazonDynamoDBException")
    failed = names.failure(NoCredentialsError())
    assert failed is not None and failed.error == "DynamoDB.SdkClientException"
    assert names.failure(ValueError("a bug of ours")) is None


def test_a_refusal_names_the_state_only_when_asked() -> None:
    plain = parameters_refused({"a": 1}, "The field 'a' is not supported")
    stated = parameters_refused({"a": 1}, "The field 'a' is not supported", "S")
    assert plain.cause == (
        "The Parameters '{\"a\":1}' could not be used to start the Task: "
        "[The field 'a' is not supported]"
    )
    assert stated.cause == "An error occurred while executing the state 'S'. " + str(plain.cause)
    assert plain.error == stated.error == "States.Runtime"


def test_timestamps_and_blobs_follow_the_sdk_version() -> None:
    shape = model("athena").operation_model("GetQueryExecution").output_shape
    moment = datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)
    response = {"QueryExecution": {"Status": {"SubmissionDateTime": moment}}}
    v1 = to_output(shape, response, SDK_V1)
    v2 = to_output(shape, response, SDK_V2)
    assert v1["QueryExecution"]["Status"]["SubmissionDateTime"] == 1714564800250
    assert v2["QueryExecution"]["Status"]["SubmissionDateTime"] == "2024-05-01T12:00:00.250Z"
    assert to_output(None, b"hi", SDK_V1) == "aGk=" and to_output(None, b"hi", SDK_V2) == "hi"


def test_sdk_metadata_spells_headers_as_aws_unless_asked_not_to() -> None:
    response = {
        "ResponseMetadata": {
            "HTTPStatusCode": 200,
            "RequestId": "r",
            "HTTPHeaders": {"content-type": "application/json", "x-amzn-requestid": "r"},
        }
    }
    aws = sdk_metadata(response)["SdkHttpMetadata"]["HttpHeaders"]
    raw = sdk_metadata(response, aws_header_names=False)["SdkHttpMetadata"]["HttpHeaders"]
    assert aws == {"Content-Type": "application/json", "x-amzn-RequestId": "r"}
    assert raw == {"content-type": "application/json", "x-amzn-requestid": "r"}


def test_a_binary_blob_is_never_turned_into_lossy_text() -> None:
    ciphertext = bytes([0x01, 0xFF, 0xFE, 0x80, 0x00])  # not UTF-8 (a KMS CiphertextBlob)
    assert to_output(None, ciphertext, SDK_V2) == "Af/+gAA="
    assert to_output(None, "é".encode(), SDK_V2) == "é"
