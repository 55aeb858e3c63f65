"""Circuit breakers per endpoint, never recorded, not closed by a stale success (review H8)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Literal

import httpx
import pytest
from pydantic import BaseModel
from stepflow.cells import (
    CIRCUIT_OPEN,
    Cell,
    CellContext,
    CellRegistry,
    CellRuntime,
    EffectCall,
    EffectHandlers,
    LogJournal,
    Policy,
    TransientError,
)
from stepflow.cells import policy as policy_module
from stepflow.cells.builtin import HttpRequest, SnsPublish, SqsSendMessage
from stepflow.cells.effects import Effect, IdempotencyKey
from stepflow.cells.handlers import CircuitOpenFailure, EffectFailure
from stepflow.cells.policy import CircuitBreaker, Guard
from stepflow.integrations.effect_handlers import builtin_handlers
from stepflow.integrations.effect_http import EffectHttp
from stepflow.runtime import InMemoryLog
from stepflow.runtime.outcome import TaskDeferredError


class FakeTime:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Done(BaseModel):
    host: str


class Hit(Effect[Done]):
    """An effect whose endpoint is its host."""

    kind: Literal["hit"] = "hit"
    host: str

    def breaker_endpoint(self) -> str:
        return self.host


class In(BaseModel):
    hosts: list[str]


class Out(BaseModel):
    hosts: list[str]


class Nope(BaseModel):
    why: str


class Hitter(Cell[In, Out, Nope, Hit]):
    name = "hitter"

    def run(self, ctx: CellContext[Hit], data: In) -> Out:
        return Out(hosts=[ctx.effect(Hit(host=host)).host for host in data.hosts])


class Swallower(Cell[In, Out, Nope, Hit]):
    """Catches every failure of its effects (and so would hide an open breaker)."""

    name = "swallower"

    def run(self, ctx: CellContext[Hit], data: In) -> Out:
        done: list[str] = []
        for host in data.hosts:
            try:
                done.append(ctx.effect(Hit(host=host)).host)
            except Exception:
                done.append("failed")
        return Out(hosts=done)


def body(task: str, *hosts: str, cell: str = "hitter") -> dict[str, Any]:
    return {
        "resource": f"arn:aws:states:::stepflow:cell:{cell}",
        "input": {"hosts": list(hosts)},
        "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:m:e",
        "state_name": "Hit",
        "task_id": task,
    }


def setup(
    dead: set[str], time: FakeTime, log: InMemoryLog
) -> tuple[CellRuntime, Counter[str], list[str]]:
    calls: Counter[str] = Counter()
    tokens: list[str] = []

    def hit(effect: Hit, call: EffectCall) -> Done:
        calls[effect.host] += 1
        tokens.append(call.key.token)
        if effect.host in dead:
            raise TransientError("Target.Down", effect.host)
        return Done(host=effect.host)

    handlers = EffectHandlers()
    policy = Policy(
        attempts=1, breaker_failures=2, breaker_reset=30.0, sleep=time.sleep, clock=time.clock
    )
    handlers.register(Hit, hit, policy)
    cells = CellRegistry()
    cells.register(Hitter)
    cells.register(Swallower)
    return CellRuntime(cells, handlers, LogJournal(log)), calls, tokens


def test_a_healthy_endpoint_keeps_working_while_another_breaker_is_open() -> None:
    time, log = FakeTime(), InMemoryLog()
    runtime, calls, _ = setup({"dead"}, time, log)
    assert runtime(body("t1", "dead")).error == "Target.Down"
    assert runtime(body("t2", "dead")).error == "Target.Down"  # dead's breaker opens
    with pytest.raises(TaskDeferredError) as deferred:  # sent again later, not failed
        runtime(body("t3", "dead"))
    assert isinstance(deferred.value.__cause__, CircuitOpenFailure)
    for i in range(5):  # one handler, another endpoint: still called, every time
        assert runtime(body(f"ok{i}", "well")).output == {"hosts": ["well"]}
    assert calls == {"dead": 2, "well": 5}


def test_an_open_breaker_is_not_recorded_and_the_redelivered_attempt_uses_the_same_keys() -> None:
    time, log = FakeTime(), InMemoryLog()
    dead = {"dead"}
    runtime, calls, tokens = setup(dead, time, log)
    runtime(body("t1", "dead"))
    runtime(body("t2", "dead"))  # open now
    with pytest.raises(TaskDeferredError) as refused:
        # A cell that swallows the refusal cannot hide it either: the runner raises it.
        runtime(body("t3", "well", "dead", "well", cell="swallower"))
    cause = refused.value.__cause__
    assert isinstance(cause, CircuitOpenFailure) and cause.error == CIRCUIT_OPEN
    assert calls == {"dead": 2, "well": 1}  # effect #1 not performed, #2 not reached
    journal = LogJournal(log)
    key = IdempotencyKey(body("t3")["execution_arn"], "Hit", "t3", 1)
    assert journal.recorded(key) is None  # nothing recorded for the refusal
    assert journal.recorded(IdempotencyKey(key.execution_arn, "Hit", "t3", 0)) is not None
    # The target recovers; the attempt is delivered again after the reset: #0 replays,
    # #1 is performed under the key it would have had, #2 for the first time.
    dead.clear()
    time.now += 30.0
    outcome = runtime(body("t3", "well", "dead", "well", cell="swallower"))
    assert outcome.output == {"hosts": ["well", "dead", "well"]}
    assert calls == {"dead": 3, "well": 2}
    assert tokens[-2] == key.token
    assert [t["replayed"] for t in outcome.effects] == [True, False, False]


def test_a_success_in_flight_when_the_breaker_opened_does_not_close_it() -> None:
    time = FakeTime()
    breaker = CircuitBreaker(2, 30.0, time.clock)
    slow = breaker.admit()  # a long call, admitted while closed
    breaker.failed(breaker.admit())
    breaker.failed(breaker.admit())
    assert breaker.state == "open"
    breaker.succeeded(slow)  # it answers now: it says nothing of the calls that failed since
    assert breaker.state == "open"
    with pytest.raises(Exception, match="circuit breaker is open"):
        breaker.admit()
    # The trial closes it; a failure in flight from before cannot open it again at once.
    time.now += 30.0
    late = breaker.admit()
    assert late.trial
    breaker.succeeded(late)
    assert breaker.state == "closed"
    breaker.failed(slow)
    breaker.failed(slow)
    assert breaker.state == "closed"


def test_a_crashed_trial_lets_another_trial_go_without_closing() -> None:
    time = FakeTime()
    breaker = CircuitBreaker(1, 30.0, time.clock)
    breaker.failed(breaker.admit())
    time.now += 30.0
    trial = breaker.admit()
    breaker.released(trial)  # the process died during it: the target's state is unknown
    assert breaker.state == "half-open"
    assert breaker.admit().trial


def test_breakers_are_kept_per_endpoint_in_a_bounded_lru(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy_module, "MAX_BREAKERS", 3)
    guard = Guard(Policy())
    first = guard.breaker("a")
    for endpoint in ("b", "c", "a", "d"):  # "a" used again: "b" is the oldest
        guard.breaker(endpoint)
    assert guard.breaker("a") is first
    assert len(guard._breakers) == 3 and "b" not in guard._breakers


def test_builtin_effects_name_their_endpoints() -> None:
    assert (
        HttpRequest(url="https://user:pw@API.example.com/x?k=v").breaker_endpoint()
        == "https://api.example.com:443"
    )
    assert HttpRequest(url="http://[::1]:8080/").breaker_endpoint() == "http://[::1]:8080"
    sqs = SqsSendMessage(
        queue_url="https://sqs.eu-west-1.amazonaws.com/123456789012/q", message_body="m"
    )
    assert sqs.breaker_endpoint() == "aws:sqs:eu-west-1"
    sns = SnsPublish(topic_arn="arn:aws:sns:us-east-2:123456789012:t", message="m")
    assert sns.breaker_endpoint() == "aws:sns:us-east-2"


def test_one_dead_http_host_does_not_open_the_breaker_of_another() -> None:
    """The review's repro: one tenant's dead host, another's healthy one, one HTTP handler."""
    calls: Counter[str] = Counter()

    def network(request: httpx.Request) -> httpx.Response:
        calls[request.url.host] += 1
        if request.url.host == "dead.example":
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, text="ok")

    time = FakeTime()
    handlers = builtin_handlers(
        None,
        None,
        EffectHttp(transport=httpx.MockTransport(network)),
        policy=Policy(attempts=1, breaker_failures=2, sleep=time.sleep, clock=time.clock),
    )

    def perform(url: str, index: int) -> str:
        call = EffectCall(IdempotencyKey("arn", "S", "t1", index))
        try:
            return str(handlers.perform(HttpRequest(url=url), call)["status"])
        except EffectFailure as failure:
            return failure.error

    assert perform("http://dead.example/", 0) == "StepFlow.Effect.Http.Connection"
    assert perform("http://dead.example/", 1) == "StepFlow.Effect.Http.Connection"
    assert perform("http://dead.example/", 2) == CIRCUIT_OPEN
    assert [perform("http://well.example/", i) for i in range(3)] == ["200"] * 3
    assert calls == {"dead.example": 2, "well.example": 3}


@pytest.mark.parametrize(
    ("reset", "heals_after"),
    [
        (30.0, 25.0),  # healed before the reset: the trial after it succeeds
        (400.0, 395.0),  # forty deferrals: as redeliveries they would dead-letter first
    ],
)
def test_in_the_workflow_environment_a_refused_task_is_sent_again_until_it_succeeds(
    reset: float, heals_after: float
) -> None:
    """Through the stepper: the refusal is in no event and counts as no failed delivery; the
    task is sent again (10 virtual seconds later each time) until the breaker's trial,
    performed once under the same key."""
    from stepflow.cells import CellModules
    from stepflow.testing import WorkflowEnvironment

    calls: Counter[str] = Counter()
    env_box: list[WorkflowEnvironment] = []
    heals_at: list[float] = []

    def hit(effect: Hit, call: EffectCall) -> Done:
        calls[effect.host] += 1
        if not heals_at or env_box[0].bus.now < heals_at[0]:
            raise TransientError("Target.Down", effect.host)
        return Done(host=effect.host)

    modules = CellModules(CellRegistry(), EffectHandlers())
    modules.cells.register(Hitter)
    policy = Policy(
        attempts=1,
        breaker_failures=1,
        breaker_reset=reset,
        sleep=lambda s: None,
        clock=lambda: env_box[0].bus.now,
    )
    modules.handlers.register(Hit, hit, policy)
    env = WorkflowEnvironment(cells=modules)
    env_box.append(env)
    machine = env.register(
        {
            "StartAt": "Hit",
            "States": {
                "Hit": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::stepflow:cell:hitter",
                    "End": True,
                }
            },
        }
    )
    first = env.start(machine, {"hosts": ["dead"]})
    env.run(first)
    assert env.result(first).error == "Target.Down"  # opens the breaker
    heals_at.append(env.bus.now + heals_after)
    second = env.start(machine, {"hosts": ["dead"]})
    env.run(second)
    result = env.result(second)
    assert result.status == "SUCCEEDED", result.cause
    assert json.loads(result.output or "null") == {"hosts": ["dead"]}
    assert calls == {"dead": 2}  # the refused deliveries called nothing
    assert "CircuitOpen" not in str(result.history)


def test_a_compensation_refused_by_an_open_breaker_fails_the_compensate_task_unrecorded() -> None:
    """Its Retry (a second later, past the reset) performs the refund, once.

    (The compensation journal never replays a failure, so this shows the behaviour, not
    the missing record: the tests above do.)
    """
    from stepflow.testing import WorkflowEnvironment

    from tests.unit.cells.saga_support import RefundCard, Shop, order_saga

    shop = Shop()
    shop.fail["ship"] = 1
    modules = shop.modules()
    env_box: list[WorkflowEnvironment] = []
    policy = Policy(breaker_failures=1, breaker_reset=1.0, clock=lambda: env_box[0].bus.now)
    modules.handlers.register(RefundCard, shop.refund, policy)
    env = WorkflowEnvironment(cells=modules)
    env_box.append(env)
    guard = modules.handlers.guard(RefundCard)
    assert guard is not None
    breaker = guard.breaker("")
    breaker.failed(breaker.admit())  # the payments service was failing: open
    arn = env.start(env.register(order_saga(retry=True)), {"sku": "a", "quantity": 2, "amount": 30})
    env.run(arn)
    result = env.result(arn)
    assert result.status == "FAILED" and result.error == "OrderFailed", result.cause
    assert shop.calls == ["hold", "charge", "ship", "refund", "release"]
    failed = [e for e in result.history if e["type"] == "TaskFailed"]
    assert [e["taskFailedEventDetails"]["error"] for e in failed][-1] == CIRCUIT_OPEN
