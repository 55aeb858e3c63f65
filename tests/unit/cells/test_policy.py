"""Handler policies: retries counted, permanent errors not retried, breaker, timeouts."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from pydantic import BaseModel
from stepflow.cells import (
    CIRCUIT_OPEN,
    TIMEOUT,
    Cell,
    CellContext,
    CellRegistry,
    CellRuntime,
    EffectCall,
    EffectHandlers,
    EffectTimeout,
    HandlerError,
    LogJournal,
    Policy,
    TransientError,
    cell_modules,
    handles,
)
from stepflow.cells.effects import Effect, IdempotencyKey
from stepflow.cells.handlers import CircuitOpenFailure
from stepflow.cells.policy import CircuitBreaker
from stepflow.runtime import InMemoryLog
from stepflow.runtime.outcome import TaskDeferredError


class FakeTime:
    """A clock that only moves when slept on (or told to)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Done(BaseModel):
    n: int


class Ping(Effect[Done]):
    kind: Literal["ping"] = "ping"
    n: int


class In(BaseModel):
    n: int


class Out(BaseModel):
    n: int


class Nope(BaseModel):
    why: str


class Pinger(Cell[In, Out, Nope, Ping]):
    name = "pinger"

    def run(self, ctx: CellContext[Ping], data: In) -> Out:
        return Out(n=ctx.effect(Ping(n=data.n)).n)


BODY: dict[str, Any] = {
    "resource": "arn:aws:states:::stepflow:cell:pinger",
    "input": {"n": 1},
    "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:m:e",
    "state_name": "Ping",
    "task_id": "t1",
}


def _runtime(handler: Any, policy: Policy, log: InMemoryLog | None = None) -> CellRuntime:
    handlers = EffectHandlers()
    handlers.register(Ping, handler, policy)
    cells = CellRegistry()
    cells.register(Pinger)
    return CellRuntime(cells, handlers, LogJournal(log if log is not None else InMemoryLog()))


def _flaky(failures: int, calls: list[EffectCall], exc: Exception) -> Any:
    def handler(effect: Ping, call: EffectCall) -> Done:
        calls.append(call)
        if len(calls) <= failures:
            raise exc
        return Done(n=effect.n + 1)

    return handler


def test_a_target_failing_twice_then_succeeding_is_called_three_times_and_recorded_once() -> None:
    time = FakeTime()
    calls: list[EffectCall] = []
    log = InMemoryLog()
    policy = Policy(attempts=3, base_delay=0.2, jitter=0.0, sleep=time.sleep, clock=time.clock)
    runtime = _runtime(_flaky(2, calls, ConnectionError("reset")), policy, log)
    outcome = runtime(BODY)
    assert outcome.ok and outcome.output == {"n": 2}
    assert len(calls) == 3
    assert time.sleeps == [0.2, 0.4]  # exponential backoff, slept through the fake only
    assert len({c.key.token for c in calls}) == 1  # every retry sends the same key
    assert outcome.effects[0]["ok"] and not outcome.effects[0]["replayed"]
    # the re-run replays: zero more calls
    again = runtime(BODY)
    assert again.ok and again.output == {"n": 2}
    assert len(calls) == 3
    assert [t["replayed"] for t in again.effects] == [True]


def test_the_journal_holds_one_record_for_the_retried_effect() -> None:
    time = FakeTime()
    calls: list[EffectCall] = []
    log = InMemoryLog()
    writes: list[str] = []
    put = log.put_lease

    def counting_put(lease: Any) -> Any:
        writes.append(lease.task_id)
        return put(lease)

    log.put_lease = counting_put  # type: ignore[method-assign]
    policy = Policy(attempts=3, jitter=0.0, sleep=time.sleep, clock=time.clock)
    _runtime(_flaky(2, calls, TransientError("Target.Busy", "busy")), policy, log)(BODY)
    assert len(calls) == 3
    assert [w for w in writes if w.startswith("fx#")] == ["fx#t1#run#0"]


def test_a_permanent_error_is_not_retried() -> None:
    time = FakeTime()
    calls: list[EffectCall] = []
    policy = Policy(attempts=5, sleep=time.sleep, clock=time.clock)
    outcome = _runtime(_flaky(9, calls, HandlerError("Orders.Refused", "no")), policy)(BODY)
    assert len(calls) == 1 and time.sleeps == []
    assert outcome.error == "Orders.Refused" and outcome.cause == "no"
    assert outcome.effects[0]["error"] == "Orders.Refused"


def test_retries_spent_fail_with_the_last_error_name() -> None:
    time = FakeTime()
    calls: list[EffectCall] = []
    policy = Policy(attempts=4, jitter=0.0, sleep=time.sleep, clock=time.clock)
    outcome = _runtime(_flaky(9, calls, ConnectionResetError("peer reset")), policy)(BODY)
    assert len(calls) == 4
    assert outcome.error == "ConnectionResetError" and outcome.cause == "peer reset"


def test_a_timeout_is_named_and_the_time_left_is_passed_down() -> None:
    time = FakeTime()
    calls: list[EffectCall] = []

    def slow(effect: Ping, call: EffectCall) -> Done:
        calls.append(call)
        assert call.timeout is not None
        time.now += call.timeout  # the call used all of its time, then gave up
        raise EffectTimeout(f"no answer within {call.timeout} s")

    policy = Policy(
        attempts=5, timeout=4.0, total_timeout=10.0, base_delay=0.5, jitter=0.0,
        sleep=time.sleep, clock=time.clock,
    )  # fmt: skip
    outcome = _runtime(slow, policy)(BODY)
    assert outcome.error == TIMEOUT
    # 4 s, sleep 0.5, 4 s, sleep 1 -> 9.5 s used: the third call gets only the 0.5 s left,
    # and no fourth call starts past the total.
    assert [c.timeout for c in calls] == [4.0, 4.0, pytest.approx(0.5)]
    assert time.now - 100.0 <= 10.0 + 1e-9


def test_python_timeout_error_is_the_timeout_error_name() -> None:
    time = FakeTime()
    calls: list[EffectCall] = []
    policy = Policy(attempts=2, jitter=0.0, sleep=time.sleep, clock=time.clock)
    outcome = _runtime(_flaky(9, calls, TimeoutError("read timed out")), policy)(BODY)
    assert outcome.error == TIMEOUT and len(calls) == 2


def test_the_breaker_opens_after_n_failures_and_stops_calling() -> None:
    time = FakeTime()
    calls: list[EffectCall] = []
    log = InMemoryLog()
    policy = Policy(
        attempts=1, breaker_failures=3, breaker_reset=30.0, sleep=time.sleep, clock=time.clock
    )
    runtime = _runtime(_flaky(10**6, calls, ConnectionError("down")), policy, log)
    for i in range(3):
        outcome = runtime({**BODY, "task_id": f"t{i}"})
        assert outcome.error == "ConnectionError"
    assert len(calls) == 3
    for i in range(3, 8):
        with pytest.raises(TaskDeferredError) as refused:
            runtime({**BODY, "task_id": f"t{i}"})  # raised: the attempt is sent again later
        cause = refused.value.__cause__
        assert isinstance(cause, CircuitOpenFailure) and cause.error == CIRCUIT_OPEN
    assert len(calls) == 3  # not called while open
    # Half-open after the reset: one trial call; it fails, so the breaker opens again.
    time.now += 30.0
    assert runtime({**BODY, "task_id": "t8"}).error == "ConnectionError"
    with pytest.raises(TaskDeferredError):
        runtime({**BODY, "task_id": "t9"})
    assert len(calls) == 4


def test_the_breaker_closes_after_a_successful_trial_and_ignores_permanent_errors() -> None:
    time = FakeTime()
    breaker = CircuitBreaker(2, 10.0, time.clock)
    breaker.failed(breaker.admit())
    breaker.succeeded(breaker.admit())  # a permanent error or a success resets the count
    breaker.failed(breaker.admit())
    assert breaker.state == "closed"
    breaker.failed(breaker.admit())
    assert breaker.state == "open"
    time.now += 10.0
    assert breaker.state == "half-open"
    trial = breaker.admit()  # the trial
    assert trial.trial
    with pytest.raises(Exception, match="circuit breaker is open"):
        breaker.admit()  # only one trial at a time
    breaker.succeeded(trial)
    assert breaker.state == "closed"
    breaker.admit()


def test_a_breaker_is_shared_per_registration_and_by_merged_handlers() -> None:
    time = FakeTime()
    calls: list[EffectCall] = []
    policy = Policy(attempts=1, breaker_failures=1, sleep=time.sleep, clock=time.clock)
    user = EffectHandlers()
    user.register(Ping, _flaky(10**6, calls, ConnectionError("down")), policy)
    merged = EffectHandlers().merged(user)
    assert merged.guard(Ping) is user.guard(Ping)
    cells = CellRegistry()
    cells.register(Pinger)
    first = CellRuntime(cells, user, LogJournal(InMemoryLog()))
    second = CellRuntime(cells, merged, LogJournal(InMemoryLog()))
    assert first(BODY).error == "ConnectionError"
    with pytest.raises(TaskDeferredError):
        second(BODY)
    assert len(calls) == 1


def test_handles_carries_a_policy_and_a_crash_is_never_retried() -> None:
    time = FakeTime()
    calls: list[int] = []

    class Crash(BaseException):
        pass

    @handles(Ping, policy=Policy(attempts=7, sleep=time.sleep, clock=time.clock))
    def crashing(effect: Ping, call: EffectCall) -> Done:
        calls.append(effect.n)
        raise Crash

    handlers = EffectHandlers()
    handlers.register(Ping, crashing)
    guard = handlers.guard(Ping)
    assert guard is not None and guard.policy.attempts == 7
    loaded = cell_modules([crashing]).handlers.guard(Ping)  # as a cells module loads it
    assert loaded is not None and loaded.policy.attempts == 7
    cells = CellRegistry()
    cells.register(Pinger)
    with pytest.raises(Crash):
        CellRuntime(cells, handlers, LogJournal(InMemoryLog()))(BODY)
    assert calls == [1] and time.sleeps == []


def test_a_wrong_result_type_from_a_custom_handler_is_a_clear_failure_and_not_retried() -> None:
    time = FakeTime()
    calls: list[int] = []

    def wrong(effect: Ping, call: EffectCall) -> Any:
        calls.append(1)
        return {"n": "not a number"}

    outcome = _runtime(wrong, Policy(sleep=time.sleep, clock=time.clock))(BODY)
    assert outcome.error == "StepFlow.Cell.InvalidEffectResult"
    assert "not its declared type" in (outcome.cause or "")
    assert calls == [1]


@pytest.mark.parametrize(
    "bad",
    [
        {"attempts": 0},
        {"timeout": 0},
        {"total_timeout": -1},
        {"base_delay": -0.1},
        {"breaker_failures": -1},
    ],
)
def test_a_policy_refuses_nonsense(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Policy(**bad)


def test_concurrent_calls_of_one_handler_are_not_serialised_by_its_breaker() -> None:
    import threading

    parties = 6
    barrier = threading.Barrier(parties, timeout=10)
    handlers = EffectHandlers()

    def meet(effect: Ping, call: EffectCall) -> Done:
        barrier.wait()  # every call must be in flight at once, or this breaks
        return Done(n=effect.n)

    handlers.register(Ping, meet, Policy(attempts=1))
    results: list[Any] = []

    def one(i: int) -> None:
        call = EffectCall(IdempotencyKey("arn", "S", "t", i))
        results.append(handlers.perform(Ping(n=i), call))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(parties)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r["n"] for r in results) == list(range(parties))


def test_a_call_that_returns_after_its_timeout_still_counts_once() -> None:
    time = FakeTime()
    calls: list[EffectCall] = []

    def late(effect: Ping, call: EffectCall) -> Done:
        calls.append(call)
        time.now += 60.0  # far past its 1 s (the target ignored the limit), but it answered
        return Done(n=effect.n)

    policy = Policy(attempts=3, timeout=1.0, total_timeout=2.0, sleep=time.sleep, clock=time.clock)
    outcome = _runtime(late, policy)(BODY)
    assert outcome.ok and outcome.output == {"n": 1}
    assert len(calls) == 1  # the effect happened: not performed again
