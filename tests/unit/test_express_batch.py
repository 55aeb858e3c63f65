"""EXPRESS item batches (runtime/express.py): counted, parked, never lost, never run twice."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from stepflow.asl import StateMachine, parse
from stepflow.data.budget import BudgetExceeded, ClockBudget
from stepflow.engine.express_rules import EXPRESS_MAX_SECONDS
from stepflow.integrations import IntegrationInvoker, default_registry
from stepflow.limits import Limits
from stepflow.runtime.clients import FixedClients
from stepflow.runtime.express import BatchInput, ItemResult, run_batch
from stepflow.runtime.outcome import TaskOutcome

LAMBDA = "arn:aws:states:::lambda:invoke"
CONTEXT = {
    "Execution": {
        "Id": "arn:aws:states:us-east-1:123456789012:execution:parent:run-1",
        "Name": "run-1",
        "Input": {"whole": "parent input"},
        "StartTime": "2026-01-01T00:00:00.000Z",
        "RoleArn": "arn:aws:iam::123456789012:role/r",
        "RedriveCount": 0,
    },
    "StateMachine": {"Id": "arn:aws:states:us-east-1:123456789012:stateMachine:parent"},
}


class Clock:
    """A virtual clock: only the test (or a task) moves it."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Lambda:
    """An inline Lambda stand-in that counts its calls per item (``Payload.n``)."""

    def __init__(self, handler: Callable[[Any], Any] | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.handler = handler or (lambda payload: payload)

    def __call__(self, body: dict[str, Any]) -> TaskOutcome:
        self.calls.append(body)
        payload = body["input"]["Payload"]
        try:
            result = self.handler(payload)
        except KeyError as exc:
            return TaskOutcome.failed("Boom", str(exc))
        return TaskOutcome.succeeded({"Payload": result, "StatusCode": 200})

    def count(self, n: int) -> int:
        return sum(1 for call in self.calls if call["input"]["Payload"].get("n") == n)


class CountdownBudget:
    """A batch budget that runs out after ``checks`` checks."""

    def __init__(self, checks: int) -> None:
        self.left = checks

    def start_expression(self) -> None:
        """Nothing to reset."""

    def check(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise BudgetExceeded("decision", 1.0)


def task(name: str, nxt: str | None = None, **extra: Any) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": LAMBDA,
        "Parameters": {"FunctionName": name, "Payload.$": "$"},
        "OutputPath": "$.Payload",
        **extra,
    }
    state.update({"Next": nxt} if nxt else {"End": True})
    return state


def machine(states: dict[str, Any], start: str) -> StateMachine:
    processor = {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
        "StartAt": start,
        "States": states,
    }
    return parse(
        {"StartAt": "M", "States": {"M": {"Type": "Map", "ItemProcessor": processor, "End": True}}}
    )


def run(
    definition: StateMachine,
    inputs: list[BatchInput],
    invoker: Any,
    clock: Clock,
    **kwargs: Any,
) -> list[ItemResult]:
    kwargs.setdefault("variables", {})
    return run_batch(
        definition, "/M", inputs, context=CONTEXT, invoker=invoker, clock=clock, **kwargs
    )


def items(n: int) -> list[BatchInput]:
    return [(i, {"n": i}) for i in range(n)]


def test_every_state_type_runs_inside_a_batch() -> None:
    states = {
        "Pass": {"Type": "Pass", "Parameters": {"n.$": "$.n", "v.$": "$seen"}, "Next": "Task"},
        "Task": task("f", "Choice"),
        "Choice": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "Fail"}],
            "Default": "Wait",
        },
        "Wait": {"Type": "Wait", "Seconds": 0, "Next": "Parallel"},
        "Parallel": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "B", "States": {"B": task("g")}},
                {"StartAt": "C", "States": {"C": {"Type": "Pass", "End": True}}},
            ],
            "Next": "Inline",
        },
        "Inline": {
            "Type": "Map",
            "ItemsPath": "$[0].list",
            "ItemProcessor": {"StartAt": "I", "States": {"I": task("h")}},
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
        "Fail": {"Type": "Fail", "Error": "One", "Cause": "item one"},
    }
    lam = Lambda(lambda p: {**p, "list": [1, 2]} if isinstance(p, dict) else p)
    results = run(machine(states, "Pass"), items(3), lam, Clock(), variables={"seen": "outer"})
    assert [r.status for r in results] == ["SUCCEEDED", "FAILED", "SUCCEEDED"]
    assert results[0].output == [1, 2]
    assert (results[1].error, results[1].cause) == ("One", "item one")
    assert len(lam.calls) == 3 * 1 + 2 * (1 + 2)  # Task each; Parallel + 2 inline items twice
    assert lam.calls[0]["input"]["Payload"] == {"n": 0, "v": "outer"}
    assert all(r.start_date is not None and r.stop_date is not None for r in results)


def test_a_wait_parks_the_item_and_it_resumes_where_it_stopped() -> None:
    states = {
        "T": task("f", "W"),
        "W": {"Type": "Wait", "Seconds": 10, "Next": "U"},
        "U": task("g"),
    }
    lam, clock = Lambda(), Clock()
    definition = machine(states, "T")
    first = run(definition, items(2), lam, clock)
    assert [r.status for r in first] == ["PENDING", "PENDING"]
    assert first[0].wake_at == clock.now + 10
    assert len(lam.calls) == 2
    parked: list[BatchInput] = [
        ItemResult.from_json(json.loads(json.dumps(r.to_json()))) for r in first
    ]
    early = run(definition, parked, lam, clock)  # not due yet: parked again, nothing runs
    assert [r.status for r in early] == ["PENDING", "PENDING"] and len(lam.calls) == 2
    clock.now += 10
    done = run(definition, list(early), lam, clock)
    assert [r.status for r in done] == ["SUCCEEDED", "SUCCEEDED"]
    assert [lam.count(0), lam.count(1)] == [2, 2]  # each task once
    assert done[0].start_date == first[0].start_date and done[0].stop_date == clock.now


def test_retry_waits_its_interval_parked_then_catch_takes_the_last_failure() -> None:
    attempts: dict[int, int] = {}

    def flaky(payload: Any) -> Any:
        attempts[payload["n"]] = attempts.get(payload["n"], 0) + 1
        if payload["n"] == 0 or attempts[payload["n"]] == 1:
            raise KeyError("flaky")
        return payload

    retry = [{"ErrorEquals": ["Boom"], "IntervalSeconds": 2, "MaxAttempts": 1}]
    catch = [{"ErrorEquals": ["States.ALL"], "Next": "Caught", "ResultPath": "$.error"}]
    states = {
        "T": task("f", Retry=retry, Catch=catch),
        "Caught": {"Type": "Pass", "End": True},
    }
    lam, clock = Lambda(flaky), Clock()
    definition = machine(states, "T")
    first = run(definition, items(2), lam, clock)
    assert [r.wake_at for r in first] == [clock.now + 2, clock.now + 2]
    clock.now += 2
    done = run(definition, list(first), lam, clock)
    assert done[0].status == "SUCCEEDED" and done[0].output["error"]["Error"] == "Boom"
    assert done[1].status == "SUCCEEDED" and done[1].output == {"n": 1}
    assert [lam.count(0), lam.count(1)] == [2, 2]


def test_failures_stay_with_their_item() -> None:
    def handler(payload: Any) -> Any:
        if payload["n"] % 2:
            raise KeyError("odd")
        return payload

    lam = Lambda(handler)
    results = run(machine({"T": task("f")}, "T"), items(5), lam, Clock())
    assert [r.status for r in results] == ["SUCCEEDED", "FAILED"] * 2 + ["SUCCEEDED"]
    assert results[1].error == "Boom" and results[4].output == {"n": 4}
    assert len(lam.calls) == 5


def test_a_raising_task_fails_its_attempt_only() -> None:
    calls: list[int] = []

    def invoker(body: dict[str, Any]) -> TaskOutcome:
        calls.append(body["input"]["Payload"]["n"])
        if body["input"]["Payload"]["n"] == 1:
            raise ConnectionError("socket closed")
        return TaskOutcome.succeeded({"Payload": "ok"})

    catch = [{"ErrorEquals": ["States.TaskFailed"], "Next": "Caught"}]
    states = {"T": task("f", Catch=catch), "Caught": {"Type": "Pass", "Result": "c", "End": True}}
    results = run(machine(states, "T"), items(3), invoker, Clock())
    assert [r.output for r in results] == ["ok", "c", "ok"]
    assert calls == [0, 1, 2]
    uncaught = run(machine({"T": task("f")}, "T"), [(1, {"n": 1})], invoker, Clock())
    assert uncaught[0].error == "States.TaskFailed"
    assert "ConnectionError: socket closed" in str(uncaught[0].cause)


@pytest.mark.parametrize("checks", range(0, 12))
def test_running_out_of_time_loses_nothing_and_runs_nothing_twice(checks: int) -> None:
    states = {"A": task("f", "B"), "B": task("g")}
    lam, clock = Lambda(), Clock()
    definition = machine(states, "A")
    pending: list[BatchInput] = list(items(4))
    finished: dict[int, ItemResult] = {}
    for _ in range(20):  # each round has a budget of ``checks`` checks, then a fresh one
        results = run(definition, pending, lam, clock, batch_budget=CountdownBudget(checks))
        assert [r.index for r in results] == [
            p.index if isinstance(p, ItemResult) else p[0] for p in pending
        ]
        pending = []
        for result in results:
            if result.status == "SUCCEEDED":
                finished[result.index] = result
            elif result.status == "NOT_RUN":
                pending.append((result.index, {"n": result.index}))
            else:
                assert result.status == "PENDING"
                pending.append(result)
        if not pending:
            break
        if checks == 0:
            assert not finished and all(r.status == "NOT_RUN" for r in results)
            return
    assert sorted(finished) == [0, 1, 2, 3]
    assert [lam.count(n) for n in range(4)] == [2, 2, 2, 2]  # both tasks, once each


def test_out_of_time_mid_item_parks_it_with_its_next_task() -> None:
    states = {"A": task("f", "B"), "B": task("g")}
    lam, clock = Lambda(), Clock()
    # checks: item 0 starts, A, B; item 1 starts, A; then out before its B.
    results = run(machine(states, "A"), items(3), lam, clock, batch_budget=CountdownBudget(5))
    assert [r.status for r in results] == ["SUCCEEDED", "PENDING", "NOT_RUN"]
    assert results[1].wake_at is None and results[1].resume is not None
    assert [lam.count(n) for n in range(3)] == [2, 1, 0]
    again = run(machine(states, "A"), [results[1], (2, {"n": 2})], lam, clock)
    assert [r.status for r in again] == ["SUCCEEDED", "SUCCEEDED"]
    assert [lam.count(n) for n in range(3)] == [2, 2, 2]
    assert [c["input"]["FunctionName"] for c in lam.calls if c["input"]["Payload"]["n"] == 1] == [
        "f",
        "g",
    ]


def test_hostile_inputs_fail_their_own_item() -> None:
    deep: Any = 0
    for _ in range(100_000):
        deep = [deep]
    huge = {"n": 1, "blob": "x" * 300_000}
    lam = Lambda()
    inputs: list[BatchInput] = [(0, {"n": 0}), (1, huge), (2, deep), (3, {"n": 3})]
    results = run(machine({"T": task("f")}, "T"), inputs, lam, Clock())
    assert [r.status for r in results] == ["SUCCEEDED", "FAILED", "FAILED", "SUCCEEDED"]
    assert results[1].error == "States.DataLimitExceeded"
    assert results[2].error == "States.Runtime" and "nested too deeply" in str(results[2].cause)
    assert len(lam.calls) == 2


def test_a_too_large_task_result_fails_the_item() -> None:
    lam = Lambda(lambda p: "y" * 2_000)
    results = run(
        machine({"T": task("f")}, "T"),
        items(1),
        lam,
        Clock(),
        limits=Limits(max_payload_bytes=1_000),
    )
    assert results[0].error == "States.DataLimitExceeded"


def test_a_task_that_outlives_its_timeout_times_out() -> None:
    clock = Clock()

    def slow(payload: Any) -> Any:
        clock.now += 5
        return payload

    states = {"T": task("f", TimeoutSeconds=3)}
    results = run(machine(states, "T"), items(1), Lambda(slow), clock)
    assert (results[0].status, results[0].error) == ("FAILED", "States.Timeout")


def test_an_item_past_five_minutes_times_out() -> None:
    states = {"W": {"Type": "Wait", "Seconds": 400, "End": True}}
    clock = Clock()
    first = run(machine(states, "W"), items(1), Lambda(), clock)
    assert first[0].wake_at == clock.now + EXPRESS_MAX_SECONDS
    clock.now += EXPRESS_MAX_SECONDS
    done = run(machine(states, "W"), list(first), Lambda(), clock)
    assert (done[0].status, done[0].error) == ("TIMED_OUT", "States.Timeout")


@pytest.mark.parametrize(
    ("resource", "refusal"),
    [
        (
            "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Express state machine does not support '.waitForTaskToken' service integration  at",
        ),
        (
            "arn:aws:states:::states:startExecution.sync:2",
            "Express state machine does not support '.sync:2' service integration at",
        ),
        (
            "arn:aws:states:us-east-1:123456789012:activity:a",
            "Express state machine does not support Activity ARN at",
        ),
    ],
)
def test_what_aws_refuses_in_express_fails_every_item_unrun(resource: str, refusal: str) -> None:
    states = {
        "P": {"Type": "Pass", "Next": "T"},
        "T": {"Type": "Task", "Resource": resource, "End": True},
    }
    lam = Lambda()
    results = run(machine(states, "P"), items(2), lam, Clock())
    assert [r.status for r in results] == ["FAILED", "FAILED"]
    assert results[0].error == "States.Runtime"
    assert refusal in str(results[0].cause) and "/ItemProcessor/States/T/Resource" in str(
        results[0].cause
    )
    assert lam.calls == []


def test_items_see_the_context_and_the_task_names_the_parent() -> None:
    states = {
        "P": {"Type": "Pass", "Parameters": {"id.$": "$$.Execution.Id", "n.$": "$.n"}, "Next": "T"},
        "T": task("f"),
    }
    lam = Lambda()
    results = run(machine(states, "P"), items(1), lam, Clock())
    assert results[0].output == {"id": CONTEXT["Execution"]["Id"], "n": 0}
    assert lam.calls[0]["execution_arn"] == CONTEXT["Execution"]["Id"]


def test_tasks_run_through_the_runtime_invoker_once_each() -> None:
    """The runtime's one task invoker (IntegrationInvoker) runs an item's lambda:invoke."""

    class Client:
        def __init__(self) -> None:
            self.requests: list[dict[str, Any]] = []

        def invoke(self, **request: Any) -> dict[str, Any]:
            self.requests.append(request)
            event = json.loads(request["Payload"])
            if event["n"] == 1:
                body = json.dumps({"errorType": "ValueError", "errorMessage": "no"}).encode()
                return {
                    "StatusCode": 200,
                    "FunctionError": "Unhandled",
                    "Payload": io.BytesIO(body),
                }
            return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(event["n"] * 2).encode())}

    client = Client()
    invoker = IntegrationInvoker(default_registry(), FixedClients(**{"lambda": client}))
    results = run(machine({"T": task("f")}, "T"), items(3), invoker, Clock())
    assert [r.status for r in results] == ["SUCCEEDED", "FAILED", "SUCCEEDED"]
    assert [r.output for r in results] == [0, None, 4]
    assert results[1].error == "ValueError" and "no" in str(results[1].cause)
    assert [json.loads(r["Payload"])["n"] for r in client.requests] == [0, 1, 2]


def test_a_finished_task_leaves_no_timer_to_wake_for() -> None:
    states = {
        "T": task("f", "W", TimeoutSeconds=5),
        "W": {"Type": "Wait", "Seconds": 10, "End": True},
    }
    clock = Clock()
    first = run(machine(states, "T"), items(1), Lambda(), clock)
    assert first[0].wake_at == clock.now + 10  # not the finished task's timeout, 5 s
    assert list(first[0].resume["timers"].values()) == [clock.now + 10]  # type: ignore[index]


def test_a_clock_budget_stops_the_batch_on_its_overall_deadline_only() -> None:
    clock = Clock()

    def slow(payload: Any) -> Any:
        clock.now += 2
        return payload

    budget = ClockBudget(clock, expression_seconds=1, decision_seconds=5)
    results = run(
        machine({"T": task("f")}, "T"), items(4), Lambda(slow), clock, batch_budget=budget
    )
    assert [r.status for r in results] == ["SUCCEEDED"] * 3 + ["NOT_RUN"]
