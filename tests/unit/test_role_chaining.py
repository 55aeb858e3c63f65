"""Role chaining over moto's STS: a ``Credentials.RoleArn`` is assumed BY the execution role.

moto does not evaluate trust policies, so the chain is proved on the wire: the
second AssumeRole request is signed with the access key of the first session
(the execution role's), read from its ``Authorization`` header. The AssumeRole
calls are counted: two on a role's first use, none for a cached second task,
one when the task's role is the execution's own; a refusal at either step
fails the task naming the role and sends nothing; expired sessions are
assumed again, both steps; a task message naming no execution role is refused
before any STS call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import boto3
import pytest
from stepflow.aws.role_clients import RoleClients, session_name
from stepflow.integrations import IntegrationInvoker, default_registry

from tests.moto_env import REGION, offline_aws
from tests.sts_wire import Wire, denied

ACCOUNT = "123456789012"
EXECUTION_ROLE = f"arn:aws:iam::{ACCOUNT}:role/stepflow/OrdersRole"
STATE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/stepflow/PaymentsRole"
EXECUTION = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:orders:run-1"
SEND = "arn:aws:states:::sqs:sendMessage"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with offline_aws(monkeypatch):
        yield


def _clients(
    wire: Wire, clock: Callable[[], float] = time.time, refuse_chained: bool = False
) -> RoleClients:
    clients = RoleClients(
        assume_roles=True,
        region=REGION,
        sts=wire.hook(boto3.client("sts", region_name=REGION)),
        clock=clock,
    )
    original = clients._sts_as

    def hooked(credentials: Mapping[str, str]) -> Any:
        client = wire.hook(original(credentials))
        if refuse_chained:

            def refuse(**_: Any) -> None:
                raise denied()

            client.meta.events.register("before-call.sts.AssumeRole", refuse)
        return client

    clients._sts_as = hooked  # type: ignore[method-assign]
    return clients


def _access_key(client: Any) -> str:
    return str(client._request_signer._credentials.get_frozen_credentials().access_key)


def _body(url: str, role: str, via: str | None = EXECUTION_ROLE) -> dict[str, Any]:
    body = {
        "resource": SEND,
        "input": {"QueueUrl": url, "MessageBody": "m"},
        "role_arn": role,
        "execution_arn": EXECUTION,
    }
    if via is not None:
        body["execution_role"] = via
    return body


def _queue() -> tuple[Any, str]:
    sqs = boto3.client("sqs", region_name=REGION)
    return sqs, sqs.create_queue(QueueName="payments")["QueueUrl"]


def _sent(sqs: Any, url: str) -> int:
    return len(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []))


def test_a_states_role_is_assumed_with_the_execution_roles_session_then_cached(
    aws: None,
) -> None:
    wire = Wire()
    clients = _clients(wire)
    sqs, url = _queue()
    invoker = IntegrationInvoker(default_registry(), clients)
    assert invoker(_body(url, STATE_ROLE)).ok
    name = session_name(EXECUTION)
    assert [(role, session) for role, session, _ in wire.requests] == [
        (EXECUTION_ROLE, name),
        (STATE_ROLE, name),
    ]
    first_key = next(k for k, user in wire.issued.items() if "/OrdersRole/" in user)
    # the chain: StepFlow signs the first AssumeRole, the execution role's session the second
    assert wire.requests[0][2] not in wire.issued
    assert wire.requests[1][2] == first_key
    assert [s.split(":assumed-role/")[-1].split("/")[0] for s in wire.signers()] == [
        "process",
        "OrdersRole",
    ]
    # the send itself is signed by the states role's session
    client = clients.for_task("sqs", STATE_ROLE, execution=EXECUTION, via=EXECUTION_ROLE)
    assert "/PaymentsRole/" in wire.issued[_access_key(client)]
    assert invoker(_body(url, STATE_ROLE)).ok  # a second task: both sessions cached
    assert len(wire.requests) == 2
    assert _sent(sqs, url) == 2


def test_the_execution_roles_own_tasks_assume_it_once_directly(aws: None) -> None:
    wire = Wire()
    _, url = _queue()
    invoker = IntegrationInvoker(default_registry(), _clients(wire))
    assert invoker(_body(url, EXECUTION_ROLE)).ok
    assert invoker(_body(url, EXECUTION_ROLE)).ok
    assert [(role, wire.signers()[0]) for role, _, _ in wire.requests] == [
        (EXECUTION_ROLE, "process")
    ]
    # the execution role's session then serves a chained role: one more AssumeRole only
    assert invoker(_body(url, STATE_ROLE)).ok
    assert [role for role, _, _ in wire.requests] == [EXECUTION_ROLE, STATE_ROLE]


def test_a_refused_execution_role_fails_the_task_without_trying_the_states_role(
    aws: None,
) -> None:
    wire = Wire()
    wire.refuse = True
    sqs, url = _queue()
    outcome = IntegrationInvoker(default_registry(), _clients(wire))(_body(url, STATE_ROLE))
    assert (outcome.ok, outcome.error) == (False, "States.TaskFailed")
    assert EXECUTION_ROLE in (outcome.cause or "") and "AccessDenied" in (outcome.cause or "")
    assert wire.attempts == [EXECUTION_ROLE]
    assert _sent(sqs, url) == 0


def test_a_states_role_that_refuses_the_execution_role_fails_the_task_naming_both(
    aws: None,
) -> None:
    wire = Wire()
    sqs, url = _queue()
    invoker = IntegrationInvoker(default_registry(), _clients(wire, refuse_chained=True))
    outcome = invoker(_body(url, STATE_ROLE))
    assert (outcome.ok, outcome.error) == (False, "States.TaskFailed")
    cause = outcome.cause or ""
    assert f"The execution role {EXECUTION_ROLE} could not assume the role {STATE_ROLE}" in cause
    assert "AccessDenied" in cause
    assert _sent(sqs, url) == 0
    # a refusal is not cached (the next task tries the second step again); the first step is
    assert invoker(_body(url, STATE_ROLE)).error == "States.TaskFailed"
    assert wire.attempts == [EXECUTION_ROLE, STATE_ROLE, STATE_ROLE]


@pytest.mark.parametrize("via", [None, ""])
def test_a_task_message_naming_no_execution_role_is_refused_before_sts(
    aws: None, via: str | None
) -> None:
    wire = Wire()
    sqs, url = _queue()
    invoker = IntegrationInvoker(default_registry(), _clients(wire))
    for role in (STATE_ROLE, EXECUTION_ROLE):
        outcome = invoker(_body(url, role, via=via))
        assert (outcome.ok, outcome.error) == (False, "States.TaskFailed")
        assert role in (outcome.cause or "") and "no execution role" in (outcome.cause or "")
    assert wire.attempts == [] and _sent(sqs, url) == 0


def test_a_malformed_execution_role_is_refused_before_sts(aws: None) -> None:
    wire = Wire()
    _, url = _queue()
    outcome = IntegrationInvoker(default_registry(), _clients(wire))(
        _body(url, STATE_ROLE, via="role/Orders")
    )
    assert (outcome.ok, outcome.error) == (False, "States.TaskFailed")
    assert wire.attempts == []


def test_expired_sessions_are_assumed_again_at_both_steps(aws: None) -> None:
    wire = Wire()
    now = [time.time()]
    clients = _clients(wire, clock=lambda: now[0])
    first = clients.for_task("sqs", STATE_ROLE, execution=EXECUTION, via=EXECUTION_ROLE)
    assert len(wire.requests) == 2
    now[0] += 3600 - 200  # within the refresh margin of the one-hour credentials
    second = clients.for_task("sqs", STATE_ROLE, execution=EXECUTION, via=EXECUTION_ROLE)
    assert [role for role, _, _ in wire.requests] == [EXECUTION_ROLE, STATE_ROLE] * 2
    # the renewed chain is signed by the renewed execution session, and the client replaced
    renewed = [k for k, user in wire.issued.items() if "/OrdersRole/" in user][-1]
    assert wire.requests[3][2] == renewed and wire.requests[1][2] != renewed
    assert second is not first and _access_key(second) != _access_key(first)
    clients.for_task("sqs", STATE_ROLE, execution=EXECUTION, via=EXECUTION_ROLE)
    assert len(wire.requests) == 4


def test_without_assume_roles_the_roles_are_checked_and_sts_is_never_called(aws: None) -> None:
    wire = Wire()
    clients = RoleClients(
        assume_roles=False, region=REGION, sts=wire.hook(boto3.client("sts", region_name=REGION))
    )
    clients.for_task("sqs", STATE_ROLE, via=EXECUTION_ROLE)
    clients.for_task("sqs", STATE_ROLE)  # no IAM here: no execution role needed
    assert wire.attempts == []
