"""Webhooks never stall the stream: a dead or slow target costs a bounded (simulated) time
per invocation of the real batch path (:func:`stepflow.aws.hooks_lambda.process`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stepflow.aws.hooks_lambda import HooksRuntime, process
from stepflow.aws.stream_records import RecordHooks
from stepflow.hooks import Dispatcher, ExecutionInfo, HookEvent
from stepflow.integrations.http_port import HttpProblem, HttpRequest, HttpResponse
from stepflow.integrations.webhooks import MemoryDeadLetter, WebhookHook, WebhookTarget

SM = "arn:aws:states:us-east-1:123456789012:stateMachine:m"


class Clock:
    """Simulated seconds: requests and sleeps advance it."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class DeadTarget:
    """Every attempt burns its whole timeout, then times out."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sent = 0

    def send(self, request: HttpRequest) -> HttpResponse:
        self.sent += 1
        self.clock.now += request.timeout
        raise HttpProblem("timeout", "no answer")


class SlowTarget(DeadTarget):
    """Every attempt succeeds after 9 seconds."""

    def send(self, request: HttpRequest) -> HttpResponse:
        self.sent += 1
        self.clock.now += min(9.0, request.timeout)
        if request.timeout < 9.0:
            raise HttpProblem("timeout", "no answer in time")
        return HttpResponse(200, "OK", (), b"")


class Decoder:
    def __init__(self, first: int = 0) -> None:
        self.first = first

    def decode(self, records: Sequence[Mapping[str, Any]]) -> list[RecordHooks]:
        out = []
        for i in range(len(records)):
            n = self.first + i
            info = ExecutionInfo(f"arn:aws:states:us-east-1:123456789012:execution:m:e{n}", SM)
            event = HookEvent("ExecutionSucceeded", info, 5, 0.0, {"id": 5})
            out.append(RecordHooks(str(n), [event]))
        return out


def _hook(http: Any, clock: Clock, dead: MemoryDeadLetter) -> WebhookHook:
    return WebhookHook(
        [WebhookTarget("https://hooks.example/h")],
        secret=b"k",
        http=http,
        dead_letter=dead,
        sleep=clock.sleep,
        clock=clock,
        timer=clock,
    )


def test_a_dead_target_costs_one_round_of_retries_across_records() -> None:
    clock, dead = Clock(), MemoryDeadLetter()
    http = DeadTarget(clock)
    hook = _hook(http, clock, dead)
    start = clock.now
    failed = process([{}] * 100, HooksRuntime(Decoder(), Dispatcher([hook])))
    assert failed == []
    assert http.sent == 5  # one round of retries, not one per record
    assert clock.now - start <= hook.budget + hook.timeout
    assert len(dead.records) == 100
    # a second invocation within the cool-down: no request at all
    process([{}] * 100, HooksRuntime(Decoder(100), Dispatcher([hook])))
    assert http.sent == 5
    # after the cool-down, one probe
    clock.now += hook.cooldown
    process([{}] * 100, HooksRuntime(Decoder(200), Dispatcher([hook])))
    assert http.sent == 6
    assert len(dead.records) == 300


def test_a_slow_target_spends_at_most_the_budget_per_window() -> None:
    clock, dead = Clock(), MemoryDeadLetter()
    http = SlowTarget(clock)
    hook = _hook(http, clock, dead)
    start = clock.now
    failed = process([{}] * 100, HooksRuntime(Decoder(), Dispatcher([hook])))
    assert failed == []
    assert clock.now - start <= hook.budget + hook.timeout
    delivered = 100 - len(dead.records)
    assert 0 < delivered < 100
    assert http.sent <= delivered + hook.attempts
