"""The task client factory over moto's STS: calls run with the task's role, assumed once.

Counts the AssumeRole calls (a proxy over moto's STS client): two tasks of one
role assume it once; an expired cache entry assumes again; a refusal fails the
task with ``States.TaskFailed`` naming the role and never reaches the target.
Also the stepper's own wiring: ``STEPFLOW_ASSUME_ROLES=true`` turns it on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from stepflow.aws.role_clients import RoleClients, session_name
from stepflow.aws.settings import Settings
from stepflow.aws.wiring import build
from stepflow.integrations import IntegrationInvoker, default_registry

from tests.moto_env import REGION, offline_aws

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/stepflow/OrdersRole"
OTHER = f"arn:aws:iam::{ACCOUNT}:role/stepflow/PaymentsRole"
EXECUTION = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:orders:run-1"
SEND = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"


class CountingSTS:
    """moto's STS client, recording each AssumeRole request (or refusing them)."""

    def __init__(self, inner: Any, refuse: bool = False) -> None:
        self.inner, self.refuse = inner, refuse
        self.calls: list[dict[str, Any]] = []

    def assume_role(self, **request: Any) -> Any:
        self.calls.append(request)
        if self.refuse:
            error = {"Code": "AccessDenied", "Message": "not authorized to perform sts:AssumeRole"}
            raise ClientError(
                {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 403}}, "AssumeRole"
            )
        return self.inner.assume_role(**request)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with offline_aws(monkeypatch):
        yield


def _factory(sts: Any, clock: Any = time.time) -> RoleClients:
    return RoleClients(assume_roles=True, region=REGION, sts=sts, clock=clock)


def _access_key(client: Any) -> str:
    return str(client._request_signer._credentials.get_frozen_credentials().access_key)


def test_two_tasks_of_one_role_assume_it_once_with_the_execution_named(aws: None) -> None:
    sts = CountingSTS(boto3.client("sts", region_name=REGION))
    clients = _factory(sts)
    first = clients.for_task("sqs", ROLE, execution=EXECUTION, via=ROLE)
    second = clients.for_task("sqs", ROLE, execution=EXECUTION, via=ROLE)
    assert first is second
    assert [(c["RoleArn"], c["RoleSessionName"]) for c in sts.calls] == [
        (ROLE, session_name(EXECUTION))
    ]
    assert session_name(EXECUTION).startswith("stepflow-") and len(session_name(EXECUTION)) < 64
    # the client signs with the assumed credentials, not the process's ("testing")
    assert _access_key(first) != "testing"
    clients.for_task("lambda", OTHER, execution=EXECUTION, via=OTHER)
    assert [c["RoleArn"] for c in sts.calls] == [ROLE, OTHER]


def test_an_expired_cache_entry_assumes_the_role_again(aws: None) -> None:
    sts = CountingSTS(boto3.client("sts", region_name=REGION))
    now = [time.time()]
    clients = _factory(sts, clock=lambda: now[0])
    clients.for_task("sqs", ROLE, via=ROLE)
    now[0] += 3600 - 200  # within the refresh margin of the one-hour credentials
    clients.for_task("sqs", ROLE, via=ROLE)
    assert [c["RoleArn"] for c in sts.calls] == [ROLE, ROLE]
    clients.for_task("sqs", ROLE, via=ROLE)
    assert len(sts.calls) == 2


def test_a_refused_role_fails_the_task_naming_it_and_sends_nothing(aws: None) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="orders")["QueueUrl"]
    sts = CountingSTS(boto3.client("sts", region_name=REGION), refuse=True)
    invoker = IntegrationInvoker(default_registry(), _factory(sts))
    body = {
        "resource": SEND,
        "input": {"QueueUrl": url, "MessageBody": "m"},
        "role_arn": ROLE,
        "execution_role": ROLE,
        "execution_arn": EXECUTION,
    }
    outcome = invoker(body)
    assert (outcome.ok, outcome.error) == (False, "States.TaskFailed")
    assert ROLE in (outcome.cause or "") and "AccessDenied" in (outcome.cause or "")
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    lambda_outcome = invoker({**body, "resource": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:f"})
    assert (lambda_outcome.error, ROLE in (lambda_outcome.cause or "")) == (
        "States.TaskFailed",
        True,
    )
    assert len(sts.calls) == 2  # a refusal is not cached: the next task tries again


@pytest.mark.parametrize(
    "role", ["", "role/Orders", "arn:aws:iam::12:role/x", "arn:aws:s3:::b", f"{ROLE}\n", "a" * 3000]
)
def test_a_malformed_role_arn_fails_the_task_without_sts_even_when_off(
    aws: None, role: str
) -> None:
    sts = CountingSTS(boto3.client("sts", region_name=REGION))
    for assume in (True, False):
        clients = RoleClients(assume_roles=assume, region=REGION, sts=sts)
        outcome = IntegrationInvoker(default_registry(), clients)(
            {
                "resource": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:f",
                "input": {},
                "role_arn": role,
            }
        )
        assert (outcome.ok, outcome.error) == (False, "States.TaskFailed")
    assert sts.calls == []


def test_the_wiring_assumes_the_tasks_role_when_the_stack_turns_it_on(aws: None) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="orders")["QueueUrl"]
    sts = CountingSTS(boto3.client("sts", region_name=REGION))
    env = {"TABLE_NAME": "log", "QUEUE_URL": "q", "AWS_REGION": REGION}
    off = build(Settings.from_environ(env), clients={"sts": sts})
    assert off.task_clients.assume_roles is False
    wiring = build(
        Settings.from_environ({**env, "STEPFLOW_ASSUME_ROLES": "true"}), clients={"sts": sts}
    )
    body = {
        "resource": SEND,
        "input": {"QueueUrl": url, "MessageBody": {"token": "t"}},
        "role_arn": ROLE,
        "execution_role": ROLE,
        "execution_arn": EXECUTION,
    }
    assert wiring.invoker(body).ok
    assert wiring.invoker(body).ok
    assert [c["RoleArn"] for c in sts.calls] == [ROLE]
    bodies = [
        json.loads(m["Body"])
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    ]
    assert bodies == [{"token": "t"}, {"token": "t"}]
