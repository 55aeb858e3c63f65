"""Hostile input against ``stepflow local`` (moto server, gateway, pollers), via boto3 and raw HTTP.

GIVEN the local stack, WHEN a 1 MiB definition is created, described, started
and run, THEN it is stored in the payload bucket's ``definitions/`` (it does
not fit in a DynamoDB item), described byte for byte, and its execution
succeeds. WHEN the requests of issue 12 that answered 5xx are sent as raw
HTTP (a lone surrogate, a 10,000-deep body or input, an ``error`` of 257
characters, a 9 MiB input, a hostile Content-Length), THEN each gets a 4xx in
AWS's shape and nothing is written.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest
from botocore.exceptions import ClientError
from stepflow.aws import topology
from stepflow.limits import MIB
from stepflow.local import LocalStack
from stepflow.local.stack import BUCKET

from tests.e2e.waiting import wait_for

ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0) as running:
        yield running


def raw(stack: LocalStack, operation: str, body: bytes, **headers: str) -> tuple[int, Any]:
    """One raw HTTP request to the gateway; the status and the parsed JSON answer."""
    url = urlparse(stack.url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=60)
    try:
        connection.putrequest("POST", "/")
        connection.putheader("X-Amz-Target", f"AWSStepFunctions.{operation}")
        connection.putheader("Content-Type", "application/x-amz-json-1.0")
        connection.putheader("Content-Length", headers.get("length", str(len(body))))
        connection.endheaders()
        connection.send(body)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def huge_definition(size: int) -> str:
    """A Pass machine whose JSON text is exactly ``size`` UTF-8 bytes (multi-byte characters)."""
    skeleton = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Comment": "", "End": True}}}
    base = len(json.dumps(skeleton, ensure_ascii=False).encode())
    filler = "é" * ((size - base) // 2) + "x" * ((size - base) % 2)
    skeleton["States"]["P"]["Comment"] = filler
    text = json.dumps(skeleton, ensure_ascii=False)
    assert len(text.encode()) == size
    return text


def test_a_1_mib_definition_is_created_described_started_and_run(stack: LocalStack) -> None:
    sfn = stack.stepfunctions()
    definition = huge_definition(1 * MIB)
    arn = sfn.create_state_machine(name="Huge", definition=definition, roleArn=ROLE)[
        "stateMachineArn"
    ]
    assert sfn.describe_state_machine(stateMachineArn=arn)["definition"] == definition
    # stored once in the bucket's definitions/ prefix (content-addressed), not in the item
    keys = [
        o["Key"]
        for o in stack.client("s3")
        .list_objects_v2(Bucket=BUCKET, Prefix=topology.DEFINITION_PREFIX)
        .get("Contents", [])
    ]
    assert len(keys) == 1
    version = sfn.publish_state_machine_version(stateMachineArn=arn)["stateMachineVersionArn"]
    assert sfn.describe_state_machine(stateMachineArn=version)["definition"] == definition
    started = sfn.start_execution(stateMachineArn=arn, input='{"k": 1}')
    described = wait_for(sfn, started["executionArn"], timeout=60.0)
    assert described["status"] == "SUCCEEDED" and json.loads(described["output"]) == {"k": 1}
    for_execution = sfn.describe_state_machine_for_execution(executionArn=started["executionArn"])
    assert for_execution["definition"] == definition
    listed = sfn.list_state_machines()["stateMachines"]
    assert [m["name"] for m in listed if m["name"] == "Huge"] == ["Huge"]
    # one byte more is refused with AWS's error
    with pytest.raises(ClientError) as refused:
        sfn.update_state_machine(stateMachineArn=arn, definition=huge_definition(MIB + 1))
    assert refused.value.response["Error"]["Code"] == "InvalidDefinition"
    assert sfn.describe_state_machine(stateMachineArn=arn)["definition"] == definition


def test_the_requests_that_were_5xx_are_4xx_in_aws_shape(stack: LocalStack) -> None:
    sfn = stack.stepfunctions()
    wait = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 600, "End": True}}}
    arn = sfn.create_state_machine(name="Hostile", definition=json.dumps(wait), roleArn=ROLE)[
        "stateMachineArn"
    ]
    activities_before = sfn.list_activities()["activities"]
    deep = b"[" * 10_000 + b"]" * 10_000
    cases = [
        ("StartExecution", b'{"stateMachineArn": "%s", "input": "\\"\\\\ud800\\""}' % arn.encode()),
        ("StartExecution", b'{"stateMachineArn": "%s", "input": "\\ud800"}' % arn.encode()),
        ("CreateActivity", b'{"name": "\\ud800"}'),
        ("CreateActivity", '{"name": "\udc00"}'.encode("utf-8", "surrogatepass")),
        ("StartExecution", deep),
        (
            "StartExecution",
            json.dumps({"stateMachineArn": arn, "input": deep.decode()}).encode(),
        ),
        (
            "StartExecution",
            json.dumps({"stateMachineArn": arn, "input": json.dumps("x" * (9 * MIB))}).encode(),
        ),
        (
            "StartExecution",
            json.dumps({"stateMachineArn": arn, "input": json.dumps("x" * 262_144)}).encode(),
        ),
    ]
    for operation, body in cases:
        status, document = raw(stack, operation, body)
        assert 400 <= status < 500, (operation, body[:80], status, document)
        assert set(document) == {"__type", "message"}, document
    assert sfn.list_executions(stateMachineArn=arn)["executions"] == []
    assert sfn.list_activities()["activities"] == activities_before
    execution = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    stop = json.dumps({"executionArn": execution, "error": "e" * 257}).encode()
    assert raw(stack, "StopExecution", stop)[1]["__type"] == "ValidationException"
    assert sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"
    sfn.stop_execution(executionArn=execution, error="e" * 256)
    assert sfn.describe_execution(executionArn=execution)["error"] == "e" * 256


def test_a_hostile_content_length_is_answered_not_waited_on(stack: LocalStack) -> None:
    for length in ("-1", "abc", str(11 * MIB)):
        status, document = raw(stack, "ListStateMachines", b"{}", length=length)
        assert 400 <= status < 500 and "__type" in document, (length, status)
    # the server is still there
    assert stack.stepfunctions().list_state_machines()["stateMachines"] is not None


def test_an_input_at_the_depth_bound_runs_durably(stack: LocalStack) -> None:
    """512 levels (the default bound) pass the API and run through DynamoDB and SQS."""
    sfn = stack.stepfunctions()
    passing = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    arn = sfn.create_state_machine(name="Deep", definition=json.dumps(passing), roleArn=ROLE)[
        "stateMachineArn"
    ]
    deep = "[" * 512 + "]" * 512
    described = wait_for(
        sfn, sfn.start_execution(stateMachineArn=arn, input=deep)["executionArn"], timeout=60.0
    )
    assert described["status"] == "SUCCEEDED"
    assert described["output"].replace(" ", "") == deep
    with pytest.raises(ClientError) as refused:
        sfn.start_execution(stateMachineArn=arn, input="[" + deep + "]")
    assert refused.value.response["Error"]["Code"] == "InvalidExecutionInput"
