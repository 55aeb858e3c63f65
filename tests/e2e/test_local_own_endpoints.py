"""Over ``stepflow local`` with boto3: no HTTP task reaches the stack's own AWS endpoints.

moto checks no signature: an ``http:invoke`` POST of ``DeleteTable`` to its
endpoint would delete StepFlow's table with no credentials at all. The body
here names the table with a JSON escape (``stepflow\\u002dlocal``), which the
own-resource guard cannot read but DynamoDB decodes, and the connection's API
key sets an Authorization header with a made-up signature, which moto routes by
and never checks (the control test shows moto answering exactly such a request
about the table): the HTTP port's deny
list is what refuses it, whatever the host's spelling, and through a redirect.
After each attempt the table still exists with the same items.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from stepflow.local import LocalStack
from stepflow.local.stack import TABLE

from tests.e2e.waiting import wait_for
from tests.unit.http_target import HttpTarget, http_target

ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"
ESCAPED_TABLE = TABLE.replace("-", "\\u002d")
# moto routes a request by the credential scope of its Authorization header, never
# checking the signature; the connection's API key sets that header.
FAKE_SIGV4 = (
    "AWS4-HMAC-SHA256 Credential=any/20260101/us-east-1/dynamodb/aws4_request, "
    "SignedHeaders=host, Signature=0"
)
DELETE_TABLE = {
    "X-Amz-Target": "DynamoDB_20120810.DeleteTable",
    "Content-Type": "application/x-amz-json-1.0",
}


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0) as running:
        yield running


@pytest.fixture(scope="module")
def target() -> Iterator[HttpTarget]:
    with http_target() as running:
        yield running


@pytest.fixture(scope="module")
def connection(stack: LocalStack) -> str:
    return str(
        stack.client("events").create_connection(
            Name="own-endpoints",
            AuthorizationType="API_KEY",
            AuthParameters={
                "ApiKeyAuthParameters": {"ApiKeyName": "Authorization", "ApiKeyValue": FAKE_SIGV4}
            },
        )["ConnectionArn"]
    )


def moto_port(stack: LocalStack) -> int:
    return int(stack.aws_endpoint.rsplit(":", 1)[1])


def table_state(stack: LocalStack) -> tuple[str, set[tuple[str, str]]]:
    """The table's status and the keys of its items."""
    dynamodb = stack.client("dynamodb")
    status = dynamodb.describe_table(TableName=TABLE)["Table"]["TableStatus"]
    keys: set[tuple[str, str]] = set()
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=TABLE, ProjectionExpression="pk, sk"
    ):
        keys.update((item["pk"]["S"], item["sk"]["S"]) for item in page["Items"])
    return status, keys


def run(stack: LocalStack, name: str, state: dict[str, Any]) -> dict[str, Any]:
    sfn = stack.stepfunctions()
    definition = {"StartAt": "T", "States": {"T": {"Type": "Task", **state, "End": True}}}
    machine = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)
    execution = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], input="{}")
    return wait_for(sfn, execution["executionArn"])


def delete_table(endpoint: str, connection: str) -> dict[str, Any]:
    return {
        "Resource": "arn:aws:states:::http:invoke",
        "Parameters": {
            "ApiEndpoint": endpoint,
            "Method": "POST",
            "Headers": DELETE_TABLE,
            "Authentication": {"ConnectionArn": connection},
            "RequestBody": json.dumps({"TableName": "@"}).replace("@", ESCAPED_TABLE),
        },
    }


def test_control_moto_answers_an_unsigned_request_naming_the_table_this_way(
    stack: LocalStack,
) -> None:
    body = json.dumps({"TableName": "@"}).replace("@", ESCAPED_TABLE)
    headers = {
        **DELETE_TABLE,
        "X-Amz-Target": "DynamoDB_20120810.DescribeTable",
        "Authorization": FAKE_SIGV4,
    }
    response = urllib3.request("POST", f"{stack.aws_endpoint}/", body=body, headers=headers)
    assert response.status == 200
    assert json.loads(response.data)["Table"]["TableName"] == TABLE


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "127.0.0.2", "0.0.0.0", "2130706433", "0x7f000001", "[::1]"],
)
def test_http_invoke_to_moto_fails_with_states_runtime_and_the_table_is_unchanged(
    stack: LocalStack, connection: str, host: str
) -> None:
    before = table_state(stack)
    name = f"ssrf-{host.strip('[]').replace('.', '-').replace(':', '-')}"
    described = run(stack, name, delete_table(f"http://{host}:{moto_port(stack)}/", connection))
    assert (described["status"], described["error"]) == ("FAILED", "States.Runtime")
    assert "one of the stack's own AWS endpoints" in described["cause"]
    status, keys = table_state(stack)
    # Every item is still there; the one execution's own (record, history) are the only new ones.
    assert status == "ACTIVE"
    assert before[1] <= keys and len(keys) > len(before[1])


def test_apigateway_invoke_and_the_stacks_own_api_are_refused(
    stack: LocalStack, connection: str
) -> None:
    described = run(
        stack,
        "ssrf-apigw",
        {
            "Resource": "arn:aws:states:::apigateway:invoke",
            "Parameters": {"ApiEndpoint": f"localhost:{moto_port(stack)}", "Method": "POST"},
        },
    )
    assert (described["status"], described["error"]) == ("FAILED", "States.Runtime")
    assert "one of the stack's own AWS endpoints" in described["cause"]
    described = run(stack, "ssrf-api", delete_table(f"{stack.url}/", connection))
    assert (described["status"], described["error"]) == ("FAILED", "States.Runtime")
    assert table_state(stack)[0] == "ACTIVE"


def test_a_redirect_to_moto_is_not_followed(
    stack: LocalStack, connection: str, target: HttpTarget
) -> None:
    target.routes["to-moto"] = lambda req: (307, [("Location", f"{stack.aws_endpoint}/")], b"")
    described = run(stack, "ssrf-redirect", delete_table(f"{target.url}/to-moto", connection))
    assert described["status"] == "FAILED"
    assert described["error"] == "States.Http.StatusCode.307"
    assert target.count("to-moto") == 1
    assert table_state(stack)[0] == "ACTIVE"


def test_a_user_endpoint_on_loopback_is_called_once(
    stack: LocalStack, connection: str, target: HttpTarget
) -> None:
    before = target.count("id_func")
    described = run(stack, "user-endpoint", delete_table(f"{target.url}/id_func", connection))
    assert described["status"] == "SUCCEEDED", described
    assert target.count("id_func") == before + 1
