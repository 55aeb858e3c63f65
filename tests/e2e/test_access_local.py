"""Access control through boto3 against ``stepflow local``: callers told apart by access key.

The local gateway maps access key ``alice`` to ``arn:aws:iam::000000000000:user/alice``.
``alice`` may start and describe ``orders-*``; ``bob`` may only describe them;
``admin`` may do anything and pass the workflow role. Every denial is AWS's
AccessDeniedException and leaves the table exactly as it was.
"""

from __future__ import annotations

import http.client
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from stepflow.local import LocalStack
from stepflow.local.stack import TABLE

ACCOUNT = "000000000000"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/StepFlowLocal"
WAIT = json.dumps(
    {
        "StartAt": "Hold",
        "States": {"Hold": {"Type": "Wait", "Seconds": 3600, "End": True}},
    }
)
FAIL = json.dumps({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "E"}}})


def user(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:user/{name}"


POLICY = [
    {"principals": [user("admin")], "actions": ["states:*"], "stateMachines": ["*"]},
    {
        "principals": [user("alice")],
        "actions": ["states:StartExecution", "states:Describe*", "states:ListExecutions"],
        "stateMachines": ["orders-*"],
    },
    {"principals": [user("bob")], "actions": ["states:Describe*"], "stateMachines": ["orders-*"]},
    # the key of LocalStack.stepfunctions(), which the console's endpoint once read with
    {"principals": [user("local")], "actions": ["states:*"], "stateMachines": ["*"]},
]


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    grants = {user("admin"): [ROLE]}
    with LocalStack(
        port=0, access_policy=json.dumps(POLICY), check_roles=json.dumps(grants)
    ) as running:
        yield running


def sfn(stack: LocalStack, key: str) -> Any:
    return boto3.client(
        "stepfunctions",
        endpoint_url=stack.url,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key="secret",
    )


def table(stack: LocalStack) -> list[dict[str, Any]]:
    """Every item of the table, in key order (what a denied call must leave unchanged)."""
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": TABLE, "ConsistentRead": True}
    while True:
        page = stack.client("dynamodb").scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))


def denied(call: Any, **params: Any) -> str:
    with pytest.raises(ClientError) as error:
        call(**params)
    assert error.value.response["Error"]["Code"] == "AccessDeniedException"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return str(error.value.response["Error"]["Message"])


def raw(client: Any, operation: str) -> list[dict[str, Any]]:
    """Collects the raw JSON bodies of ``operation``'s responses (boto3 drops unknown fields)."""
    bodies: list[dict[str, Any]] = []

    def keep(http_response: Any, **_: Any) -> None:
        bodies.append(json.loads(http_response.content))

    client.meta.events.register(f"after-call.states.{operation}", keep)
    return bodies


@pytest.fixture(scope="module")
def machines(stack: LocalStack) -> dict[str, str]:
    admin = sfn(stack, "admin")
    arns = {}
    for name, definition in (("orders-eu", WAIT), ("orders-failing", FAIL), ("billing", WAIT)):
        arns[name] = admin.create_state_machine(name=name, definition=definition, roleArn=ROLE)[
            "stateMachineArn"
        ]
    return arns


def test_alice_starts_orders_and_bob_may_only_describe(
    stack: LocalStack, machines: dict[str, str]
) -> None:
    alice, bob = sfn(stack, "alice"), sfn(stack, "bob")
    started = alice.start_execution(stateMachineArn=machines["orders-eu"], name="o1")
    execution = started["executionArn"]
    assert bob.describe_execution(executionArn=execution)["status"] == "RUNNING"

    message = denied(alice.start_execution, stateMachineArn=machines["billing"], name="b1")
    assert message.startswith(
        f"User: {user('alice')} is not authorized to perform: states:StartExecution on resource: "
        f"{machines['billing']}"
    )
    before = table(stack)
    denied(bob.start_execution, stateMachineArn=machines["orders-eu"], name="o2")
    denied(bob.stop_execution, executionArn=execution, error="E", cause="bob")
    denied(alice.stop_execution, executionArn=execution)
    denied(bob.redrive_execution, executionArn=execution)
    denied(bob.delete_state_machine, stateMachineArn=machines["orders-eu"])
    denied(bob.update_state_machine, stateMachineArn=machines["orders-eu"], definition=FAIL)
    denied(bob.get_execution_history, executionArn=execution)
    denied(bob.describe_state_machine, stateMachineArn=machines["billing"])
    denied(bob.list_executions, stateMachineArn=machines["orders-eu"])
    denied(bob.publish_state_machine_version, stateMachineArn=machines["orders-eu"])
    denied(bob.create_state_machine, name="orders-new", definition=WAIT, roleArn=ROLE)
    assert table(stack) == before  # nothing was written for any denied call
    assert bob.describe_execution(executionArn=execution)["status"] == "RUNNING"
    assert alice.list_executions(stateMachineArn=machines["orders-eu"])["executions"]


def test_a_failed_execution_can_be_redriven_only_by_who_may(
    stack: LocalStack, machines: dict[str, str]
) -> None:
    admin, alice, bob = (sfn(stack, key) for key in ("admin", "alice", "bob"))
    execution = alice.start_execution(stateMachineArn=machines["orders-failing"], name="f1")[
        "executionArn"
    ]
    assert bob.describe_execution(executionArn=execution)["status"] == "FAILED"
    before = table(stack)
    denied(bob.redrive_execution, executionArn=execution)
    denied(alice.redrive_execution, executionArn=execution)
    assert table(stack) == before
    admin.redrive_execution(executionArn=execution)
    assert table(stack) != before  # the allowed redrive did write


def test_listing_shows_only_what_the_caller_may_describe(
    stack: LocalStack, machines: dict[str, str]
) -> None:
    def names(key: str) -> set[str]:
        listed = sfn(stack, key).list_state_machines()["stateMachines"]
        return {m["name"] for m in listed}

    assert names("admin") >= {"orders-eu", "orders-failing", "billing"}
    assert names("bob") == {"orders-eu", "orders-failing"}
    assert names("mallory") == set()


def test_principals_are_recorded_and_boto3_tolerates_the_fields(
    stack: LocalStack, machines: dict[str, str]
) -> None:
    alice = sfn(stack, "alice")
    machine_bodies = raw(alice, "DescribeStateMachine")
    described = alice.describe_state_machine(stateMachineArn=machines["orders-eu"])
    assert "createdBy" not in described  # botocore drops members its model lacks...
    assert machine_bodies[0]["createdBy"] == user("admin")  # ...the wire carries them
    execution = alice.start_execution(stateMachineArn=machines["orders-eu"], name="rec")[
        "executionArn"
    ]
    execution_bodies = raw(alice, "DescribeExecution")
    assert alice.describe_execution(executionArn=execution)["status"] == "RUNNING"
    assert execution_bodies[0]["startedBy"] == user("alice")


def test_pass_role_is_checked_when_asked_for(stack: LocalStack, machines: dict[str, str]) -> None:
    admin = sfn(stack, "admin")
    other = f"arn:aws:iam::{ACCOUNT}:role/Admin"
    before = table(stack)
    message = denied(admin.create_state_machine, name="orders-x", definition=WAIT, roleArn=other)
    assert f"iam:PassRole on resource: {other}" in message
    denied(admin.update_state_machine, stateMachineArn=machines["orders-eu"], roleArn=other)
    assert table(stack) == before
    assert admin.describe_state_machine(stateMachineArn=machines["orders-eu"])["roleArn"] == ROLE


def test_an_unsigned_request_is_an_unknown_caller(
    stack: LocalStack, machines: dict[str, str]
) -> None:
    request = urllib.request.Request(
        stack.url,
        data=json.dumps({"stateMachineArn": machines["orders-eu"]}).encode(),
        headers={
            "X-Amz-Target": "AWSStepFunctions.DescribeStateMachine",
            "Content-Type": "application/x-amz-json-1.0",
        },
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=10)
    assert error.value.code == 400
    assert json.loads(error.value.read())["__type"] == "AccessDeniedException"


def test_an_unsigned_browser_reads_through_the_console_no_more_than_through_the_api(
    stack: LocalStack, machines: dict[str, str]
) -> None:
    execution = sfn(stack, "admin").start_execution(stateMachineArn=machines["orders-eu"])[
        "executionArn"
    ]

    def call(method: str, path: str, body: dict[str, Any], **headers: str) -> tuple[int, str]:
        host = stack.url.removeprefix("http://")
        connection = http.client.HTTPConnection(host, timeout=30)
        try:
            connection.request(method, path, body=json.dumps(body), headers=headers)
            reply = connection.getresponse()
            return reply.status, reply.read().decode()
        finally:
            connection.close()

    # the API refuses an unsigned caller the history
    target = {"X-Amz-Target": "AWSStepFunctions.GetExecutionHistory"}
    status, text = call("POST", "/", {"executionArn": execution}, **target)
    assert status == 400 and "AccessDenied" in text
    # and the console's endpoint reads nothing by ARN: no statuses, no history
    status, text = call("GET", "/console/api/graph?executionArn=" + execution, {})
    assert status == 405 and "Hold" not in text
    status, text = call("POST", "/console/api/graph", {"executionArn": execution})
    assert status == 422 and "Hold" not in text


def test_the_live_stream_answers_only_callers_the_policy_lets_read_the_history(
    stack: LocalStack, machines: dict[str, str]
) -> None:
    """GET /live/executions/<arn> (server-sent events) applies the policy as the API does.

    ``admin`` (states:*) gets every event, each once; ``alice`` and ``bob`` (no
    GetExecutionHistory) and an unsigned request get the very answer an unknown
    execution gets, so a denied caller learns nothing, not even that it exists.
    """
    from botocore.credentials import Credentials
    from stepflow.live.sse_client import NoLiveStreamError, follow
    from stepflow.proxy.signing import sign_request

    def signed(key: str) -> Any:
        frozen = Credentials(key, "secret").get_frozen_credentials()
        return lambda url, headers: sign_request(frozen, "us-east-1", "GET", url, headers, b"")

    arn = sfn(stack, "admin").start_execution(stateMachineArn=machines["orders-failing"])[
        "executionArn"
    ]
    events = list(follow(stack.url, arn, sign=signed("admin"), timeout=30))
    history = sfn(stack, "admin").get_execution_history(executionArn=arn)["events"]
    assert [e["id"] for e in events] == [e["id"] for e in history]
    assert events[-1]["type"] == "ExecutionFailed"

    unknown = arn.rsplit(":", 1)[0] + ":nobody"
    answers = {}
    for who, sign in (("alice", signed("alice")), ("bob", signed("bob")), ("anyone", None)):
        with pytest.raises(NoLiveStreamError) as refused:
            list(follow(stack.url, arn, sign=sign, timeout=30))
        answers[who] = (refused.value.status, refused.value.body.replace(arn, "<arn>"))
    with pytest.raises(NoLiveStreamError) as missing:
        list(follow(stack.url, unknown, sign=signed("admin"), timeout=30))
    expected = (404, missing.value.body.replace(unknown, "<arn>"))
    assert answers == {"alice": expected, "bob": expected, "anyone": expected}
