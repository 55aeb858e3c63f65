"""The Lambda context of each invocation by ``stepflow local``'s pollers (local/invocation.py)."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest
from stepflow.aws.stepper_lambda import seconds_left, time_left
from stepflow.limits import Limits
from stepflow.local import LocalStack
from stepflow.local.invocation import RUNNER, STEPPER, Function, Invocation
from stepflow.local.pollers import HandlerTimeoutError, Pollers


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class OneBatchQueue:
    """An SQS client with one message to receive, once; records what is deleted."""

    def __init__(self, messages: int = 1) -> None:
        self.messages = [
            {"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": "{}"} for i in range(messages)
        ]
        self.deleted: list[dict[str, str]] = []

    def receive_message(self, **_: Any) -> dict[str, Any]:
        messages, self.messages = self.messages, []
        return {"Messages": messages}

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> None:  # noqa: N803
        self.deleted.extend(Entries)


def test_the_time_left_counts_down_from_the_timeout_and_stops_at_zero() -> None:
    # GIVEN an invocation of the runner begun at 100 s on the clock
    clock = Clock()
    context = Invocation.begin(RUNNER.name, RUNNER.timeout, clock)
    # THEN the whole timeout is left, then less as the clock moves, never below zero
    assert context.get_remaining_time_in_millis() == 900_000
    clock.now = 112.5
    assert context.get_remaining_time_in_millis() == 887_500
    clock.now = 100.0 + 900.0
    assert context.get_remaining_time_in_millis() == 0
    clock.now = 5_000.0  # a handler abandoned at its timeout reads on
    assert context.get_remaining_time_in_millis() == 0
    # AND the Lambda handler's own readers see it (the runner's deadline, in seconds)
    left = seconds_left(context)
    assert left is not None and left() == 0.0


def test_the_context_has_what_powertools_reads_and_a_request_id_per_invocation() -> None:
    first = Invocation.begin(STEPPER.name, STEPPER.timeout)
    second = Invocation.begin(STEPPER.name, STEPPER.timeout)
    assert first.function_name == "stepflow-stepper"
    assert first.invoked_function_arn == (
        "arn:aws:lambda:us-east-1:000000000000:function:stepflow-stepper"
    )
    assert first.memory_limit_in_mb == 512
    assert first.aws_request_id != second.aws_request_id


def test_the_functions_timeouts_are_the_deployed_ones() -> None:
    # The CDK stack builds the functions with the same constants (cdk/stepflow_cdk/compute.py).
    assert (STEPPER.timeout, RUNNER.timeout) == (30, 900)


BAD_TIMEOUTS = [0, -1, float("nan"), float("inf"), True, "30"]


@pytest.mark.parametrize("timeout", [*BAD_TIMEOUTS, None])
def test_a_bad_timeout_is_refused(timeout: Any) -> None:
    with pytest.raises(ValueError):
        Invocation.begin("f", timeout)


@pytest.mark.parametrize("timeout", BAD_TIMEOUTS)
def test_pollers_refuse_a_bad_timeout_before_they_poll(timeout: Any) -> None:
    with pytest.raises(ValueError):
        Pollers(OneBatchQueue(), "q", lambda e, c: {}, timeout=timeout, function=STEPPER)
    with pytest.raises(ValueError):
        Pollers(OneBatchQueue(), "q", lambda e, c: {}, function=Function("f", timeout))


def test_the_stepper_stops_starting_executions_once_a_decisions_budget_is_not_left() -> None:
    # GIVEN the stepper's context (30 s) and a decision budget of 10 s (+ a 5 s margin)
    clock = Clock()
    context = Invocation.begin(STEPPER.name, STEPPER.timeout, clock)
    has_time = time_left(context, SimpleNamespace(limits=Limits()))  # type: ignore[arg-type]
    assert has_time is not None
    # THEN the first message always goes ahead, the next while over 15 s are left
    assert has_time() and has_time()
    clock.now = 114.9
    assert has_time()
    clock.now = 115.0  # 15 s left: the rest of the batch goes back to the queue
    assert not has_time()


def test_each_call_gets_its_own_context_of_the_pollers_function() -> None:
    # GIVEN runner pollers over a queue with two batches' worth of one message
    seen: list[Any] = []
    queue = OneBatchQueue()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append(context)
        return {}

    pollers = Pollers(queue, "q", handler, function=RUNNER)
    # WHEN they poll twice
    assert pollers.poll_once() == 1
    queue.messages = [{"MessageId": "n", "ReceiptHandle": "s", "Body": "{}"}]
    assert pollers.poll_once() == 1
    # THEN each call had a fresh context of the runner, its deadline at most 900 s away
    assert [c.function_name for c in seen] == ["stepflow-runner", "stepflow-runner"]
    assert seen[0] is not seen[1] and seen[0].aws_request_id != seen[1].aws_request_id
    assert all(0 < c.get_remaining_time_in_millis() <= 900_000 for c in seen)
    assert len(queue.deleted) == 2


def test_an_emulated_cut_off_shorter_than_the_functions_timeout_leaves_the_context_whole() -> None:
    # GIVEN stepper pollers cutting invocations off at 2 s (a stand-in, e.g. tests/e2e/
    # test_long_tasks.py), shorter than a decision's budget and margin (15 s)
    seen: list[Any] = []
    pollers = Pollers(
        OneBatchQueue(), "q", lambda e, c: seen.append(c) or {}, timeout=2.0, function=STEPPER
    )
    # WHEN a batch is handled
    pollers.poll_once()
    # THEN its context still counts down from the stepper's deployed 30 s: told 2 s, the
    # handler would defer every event it gets (time_left), and the executions never end
    assert 15_000 < seen[0].get_remaining_time_in_millis() <= 30_000


def test_a_handler_overrunning_its_timeout_is_abandoned_and_then_reads_no_time_left() -> None:
    # GIVEN pollers of a function of 0.2 s cutting an invocation off then, and a handler
    # that waits
    release, done = threading.Event(), threading.Event()
    read: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        release.wait(30.0)
        read.append(context.get_remaining_time_in_millis())
        done.set()
        return {}

    queue = OneBatchQueue()
    pollers = Pollers(queue, "q", handler, timeout=0.2, function=Function("short", 0.2))
    # WHEN a batch overruns
    with pytest.raises(HandlerTimeoutError):
        pollers.poll_once()
    # THEN it was abandoned, its message not deleted (it comes back), and the handler,
    # running on, finds its deadline passed
    assert pollers.timeouts == 1 and queue.deleted == []
    release.set()
    assert done.wait(30.0)
    assert read == [0]


@pytest.mark.parametrize("timeout", [0, -2.5, float("nan")])
def test_the_local_stack_refuses_a_bad_stepper_timeout_before_it_starts(timeout: float) -> None:
    stack = LocalStack(port=0, stepper_timeout=timeout)
    with pytest.raises(ValueError):
        stack.start()
    assert stack.url == "" and stack.wiring is None  # nothing was started
