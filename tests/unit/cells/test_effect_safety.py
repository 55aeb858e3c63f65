"""Review H13: secrets of a URL kept out of causes, sends without dedup not retried blindly,
the EKS Pod Identity address refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from stepflow.cells import (
    Cell,
    CellContext,
    CellRegistry,
    CellRuntime,
    EffectCall,
    LogJournal,
    Policy,
)
from stepflow.cells.builtin import (
    EventBridgePutEvents,
    EventEntry,
    HttpRequest,
    SnsPublish,
    SqsSendMessage,
)
from stepflow.cells.effects import Effect, IdempotencyKey
from stepflow.cells.handlers import EffectFailure
from stepflow.integrations.effect_handlers import builtin_handlers
from stepflow.integrations.effect_http import EffectHttp, redacted_url
from stepflow.integrations.http_port import HttpProblem, checked, peer_refusal
from stepflow.integrations.http_port import HttpRequest as PortRequest
from stepflow.runtime import InMemoryLog
from stepflow.runtime.clients import FixedClients

ARN = "arn:aws:states:us-east-1:123456789012:execution:m:e"
FAST = Policy(attempts=3, base_delay=0.0, jitter=0.0, breaker_failures=0, sleep=lambda s: None)
SECRET_URL = "https://alice:hunter2@api.example.com/v1/pay?token=s3cr3t&mode=live#frag"


# -- URLs in causes ----------------------------------------------------------------------------


def test_a_url_is_redacted_of_userinfo_and_query_values() -> None:
    assert redacted_url(SECRET_URL) == "https://***@api.example.com/v1/pay?token=***&mode=***"
    assert redacted_url("http://h:8080/p?flag") == "http://h:8080/p?flag"
    assert redacted_url("http://h/") == "http://h/"


class Empty(BaseModel):
    pass


class Sent(BaseModel):
    status: int


class Err(BaseModel):
    why: str


class Caller(Cell[Empty, Sent, Err, HttpRequest]):
    name = "caller"

    def run(self, ctx: CellContext[HttpRequest], data: Empty) -> Sent:
        return Sent(status=ctx.effect(HttpRequest(url=SECRET_URL)).status)


@pytest.mark.parametrize(
    "answer",
    [
        lambda r: httpx.Response(404, text="no such thing"),
        lambda r: httpx.Response(200, text="{", headers={"Content-Type": "application/json"}),
        lambda r: (_ for _ in ()).throw(httpx.ConnectError(f"cannot reach {r.url}", request=r)),
        lambda r: (_ for _ in ()).throw(httpx.ReadTimeout("slow", request=r)),
    ],
    ids=["status", "json", "connection", "timeout"],
)
def test_no_secret_of_the_url_reaches_the_journal_or_the_task_failure(
    answer: Callable[[httpx.Request], httpx.Response],
) -> None:
    log = InMemoryLog()
    http = EffectHttp(transport=httpx.MockTransport(answer))
    cells = CellRegistry()
    cells.register(Caller)
    runtime = CellRuntime(cells, builtin_handlers(None, None, http, policy=FAST), LogJournal(log))
    body = {
        "resource": "arn:aws:states:::stepflow:cell:caller",
        "input": {},
        "execution_arn": ARN,
        "state_name": "Call",
        "task_id": "t1",
    }
    outcome = runtime(body)
    assert not outcome.ok
    record = LogJournal(log).recorded(IdempotencyKey(ARN, "Call", "t1", 0))
    assert record is not None and not record.ok
    for text in (outcome.cause or "", str(outcome.effects[0]["cause"]), record.cause or ""):
        assert "api.example.com" in text  # still says which endpoint failed
        for secret in ("alice", "hunter2", "s3cr3t", "live", "frag"):
            assert secret not in text, text


# -- AWS sends retried only when they cannot be delivered twice ---------------------------------


STANDARD = "https://sqs.us-east-1.amazonaws.com/123456789012/orders"
EFFECTS: dict[str, tuple[str, Effect[Any], bool]] = {
    "sqs-standard": ("sqs", SqsSendMessage(queue_url=STANDARD, message_body="m"), False),
    "sqs-fifo": (
        "sqs",
        SqsSendMessage(queue_url=STANDARD + ".fifo", message_body="m", message_group_id="g"),
        True,
    ),
    "sqs-own-dedup": (
        "sqs",
        SqsSendMessage(queue_url=STANDARD, message_body="m", message_deduplication_id="d"),
        True,
    ),
    "sns-standard": ("sns", SnsPublish(topic_arn="arn:aws:sns:us-east-1:1:t", message="m"), False),
    "events": (
        "events",
        EventBridgePutEvents(entries=[EventEntry(source="s", detail_type="d", detail={})]),
        False,
    ),
}


def _client(service: str) -> Any:
    import boto3

    return boto3.client(
        service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def _perform(service: str, effect: Effect[Any], code: str) -> tuple[int, str]:
    """Perform ``effect`` against a client that answers ``code`` every time: calls, error."""
    from botocore.stub import Stubber

    client = _client(service)
    calls: list[str] = []
    client.meta.events.register(
        "before-parameter-build", lambda model, **kw: calls.append(model.name)
    )
    handlers = builtin_handlers(None, FixedClients(**{service: client}), policy=FAST)
    operation = {"sqs": "send_message", "sns": "publish", "events": "put_events"}[service]
    with Stubber(client) as stub, pytest.raises(EffectFailure) as failure:
        for _ in range(FAST.attempts):
            stub.add_client_error(operation, code, http_status_code=500)
        handlers.perform(effect, EffectCall(IdempotencyKey(ARN, "S", "t", 0)))
    return len(calls), failure.value.error


UNCLEAR = {"sqs": ["InternalError", "ServiceUnavailable"], "sns": ["InternalError"], "events": []}
"""Codes an AWS-side failure is answered with, each transient for a deduplicated request."""
THROTTLED = {"sqs": "RequestThrottled", "sns": "Throttled", "events": "ThrottlingException"}


@pytest.mark.parametrize(
    ("case", "code"),
    [(case, code) for case in sorted(EFFECTS) for code in UNCLEAR[EFFECTS[case][0]]],
)
def test_an_unclear_aws_failure_is_retried_only_when_the_target_deduplicates(
    case: str, code: str
) -> None:
    service, effect, deduplicated = EFFECTS[case]
    calls, error = _perform(service, effect, code)
    assert code in error
    assert calls == (3 if deduplicated else 1)


@pytest.mark.parametrize("case", sorted(EFFECTS))
def test_throttling_is_retried_for_every_send(case: str) -> None:
    service, effect, _ = EFFECTS[case]
    calls, error = _perform(service, effect, THROTTLED[service])
    assert calls == 3 and "Throttl" in error


@pytest.mark.parametrize("case", sorted(EFFECTS))
def test_a_client_side_failure_is_retried_only_when_the_target_deduplicates(case: str) -> None:
    """An SdkClientException (the connection lost after sending) may follow a delivery."""
    from botocore.exceptions import ReadTimeoutError

    service, effect, deduplicated = EFFECTS[case]
    client = _client(service)
    calls: list[str] = []

    def lost(model: Any, **kwargs: Any) -> Any:
        calls.append(model.name)
        raise ReadTimeoutError(endpoint_url="https://aws.example")

    client.meta.events.register("before-call", lost)
    handlers = builtin_handlers(None, FixedClients(**{service: client}), policy=FAST)
    with pytest.raises(EffectFailure) as failure:
        handlers.perform(effect, EffectCall(IdempotencyKey(ARN, "S", "t", 0)))
    assert failure.value.error.endswith(".SdkClientException")
    assert len(calls) == (3 if deduplicated else 1)


# -- the EKS Pod Identity agent ----------------------------------------------------------------


@pytest.mark.parametrize("address", ["fd00:ec2::23", "fd00:ec2::254", "169.254.170.23"])
def test_metadata_and_pod_identity_addresses_are_refused(address: str) -> None:
    assert peer_refusal(address, allow_loopback=True) is not None
    with pytest.raises(HttpProblem):
        checked(
            PortRequest(
                "GET",
                f"http://[{address}]/" if ":" in address else f"http://{address}/",
                (),
                None,
                1.0,
            )
        )


# -- headers that frame the request ------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["Host", "content-length", "Transfer-Encoding", "TE", "Proxy-Authorization", "Trailer"]
)
def test_a_header_that_frames_the_request_is_refused_before_anything_is_sent(name: str) -> None:
    sent: list[httpx.Request] = []
    http = EffectHttp(
        transport=httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(200))
    )
    call = EffectCall(IdempotencyKey(ARN, "S", "t1", 0))
    effect = HttpRequest(url="https://api.example.com/x", headers={name: "1"})
    with pytest.raises(Exception) as failure:
        http(effect, call)
    assert getattr(failure.value, "error", None) == "StepFlow.Effect.Http.Refused"
    assert sent == []
    # A cell may authorize its own request (no connection does it for an effect).
    auth = HttpRequest(url="https://api.example.com/x", headers={"Authorization": "Bearer t"})
    assert http(auth, call).status == 200
    assert sent[0].headers["authorization"] == "Bearer t"
