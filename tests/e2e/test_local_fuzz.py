"""API fuzzing as raw HTTP against ``stepflow local``: the gateway, the handler, moto behind.

GIVEN the local stack with a state machine, an execution and an activity,
WHEN Hypothesis sends requests built from botocore's input shapes (see
:mod:`tests.api.fuzz`), with hostile methods, paths and targets now and then,
as raw HTTP, THEN no answer is a 5xx, every 4xx has AWS's error shape, no
request hangs (a socket timeout fails the test) and the stack still serves
boto3 afterwards. 100 examples in the suite (the in-process fuzz runs 300);
``HYPOTHESIS_PROFILE=long`` runs about 1,700.
"""

from __future__ import annotations

import http.client
import json
import time
from collections import Counter
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stepflow.local import LocalStack

from tests.api.fuzz import PASS, ROLE, WAIT, Known, fuzz_settings, requests

TIMEOUT = 30.0
"""Seconds one request may take; more fails the test as a hang."""

KNOWN = Known()
STATUSES: Counter[int] = Counter()
"""Answers by status over the module (read by bench/fuzz_api.py)."""


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0) as running:
        sfn = running.stepfunctions()
        arn = sfn.create_state_machine(name="M", definition=WAIT, roleArn=ROLE)["stateMachineArn"]
        express = sfn.create_state_machine(
            name="X", definition=PASS, roleArn=ROLE, type="EXPRESS", publish=True
        )
        execution = sfn.start_execution(stateMachineArn=arn, name="run-1")["executionArn"]
        activity = sfn.create_activity(name="work")["activityArn"]
        KNOWN.arns = [
            arn,
            express["stateMachineArn"],
            express["stateMachineVersionArn"],
            execution,
            activity,
            ROLE,
        ]
        yield running


def send(stack: LocalStack, method: str, path: str, target: str, body: bytes) -> tuple[int, bytes]:
    url = urlparse(stack.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=TIMEOUT)
    try:
        connection.request(
            method,
            path,
            body=body,
            headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.0"},
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@fuzz_settings(scale=1 / 3)
@given(data=st.data())
def test_no_raw_request_is_a_5xx_or_a_hang(stack: LocalStack, data: st.DataObject) -> None:
    operation, body = data.draw(requests(KNOWN), label="request")
    method = data.draw(st.sampled_from(("POST",) * 8 + ("GET", "PUT")), label="method")
    path = data.draw(st.sampled_from(("/",) * 8 + ("/x", "//")), label="path")
    prefix = data.draw(st.sampled_from(("AWSStepFunctions.",) * 8 + ("", "AWSStepFunctions")))
    encoded = body.encode("utf-8", "surrogatepass")
    status, answer = send(stack, method, path, prefix + operation, encoded)
    STATUSES[status] += 1
    assert status < 500, f"{operation} answered {status}: {answer[:300]!r} to {encoded[:300]!r}"
    if status >= 400:
        document = json.loads(answer)
        assert set(document) == {"__type", "message"}, document


def test_the_stack_still_serves_boto3_after_the_fuzzing(stack: LocalStack) -> None:
    """The fuzzing may have deleted what it aimed at; the stack still serves new work."""
    sfn = stack.stepfunctions()
    arn = sfn.create_state_machine(name="After", definition=PASS, roleArn=ROLE)["stateMachineArn"]
    assert sfn.describe_state_machine(stateMachineArn=arn)["definition"] == PASS
    started = sfn.start_execution(stateMachineArn=arn, input='{"a": 1}')
    deadline = time.monotonic() + 60
    described = sfn.describe_execution(executionArn=started["executionArn"])
    while described["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.1)
        described = sfn.describe_execution(executionArn=started["executionArn"])
    assert described["status"] == "SUCCEEDED" and json.loads(described["output"]) == {"a": 1}
