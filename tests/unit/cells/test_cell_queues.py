"""Cells on a task queue, in memory: routing, and a worker's run the same as inline.

The routed environment's stepper loads no cell at all: a routed cell can only
run on a worker (cells-workers.md). Crashes, stalls and competing workers:
test_cell_workers.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from stepflow.cells import IdempotencyKey
from stepflow.cells.queues import CellQueueError, CellQueues, activity_name, envelope, task_body
from stepflow.runtime.messages import Message
from stepflow.testing import WorkflowEnvironment
from stepflow.worker import CellHandler, TaskContext, TaskFailure, Worker

from tests.unit.cells.queue_support import (
    CELL,
    MACHINE,
    QUEUE_ARN,
    Calls,
    Recording,
    modules,
    open_task,
    serving,
    started,
    until,
    worker,
)


def test_routes_pick_the_queue_by_name_major_and_star() -> None:
    queues = CellQueues.parse("pay:2=fast, pay=slow, saga:compensate=undo, *=rest")
    assert queues.queue_for("arn:aws:states:::stepflow:cell:pay:2") == "fast"
    assert queues.queue_for("arn:aws:states:::stepflow:cell:pay:2.1.0") == "fast"
    assert queues.queue_for("arn:aws:states:::stepflow:cell:pay:1") == "slow"
    assert queues.queue_for("arn:aws:states:::stepflow:cell:pay") == "slow"
    assert queues.queue_for("arn:aws:states:::stepflow:cell:ship") == "rest"
    assert queues.queue_for("arn:aws:states:::stepflow:saga:compensate") == "undo"
    assert queues.queue_for("arn:aws:states:::lambda:invoke") is None
    assert queues.queue_for("arn:aws:states:::stepflow:cell:x.waitForTaskToken") is None
    assert CellQueues.parse("ship=q").queue_for("arn:aws:states:::stepflow:cell:pay") is None
    assert CellQueues.parse("*=q").queue_for("arn:aws:states:::stepflow:saga:compensate") == "q"
    assert not CellQueues.parse("") and not CellQueues.parse(" , ")


@pytest.mark.parametrize(
    "text",
    [
        "pay",  # no queue
        "pay=",  # empty queue
        "pay=a b",  # a queue SQS cannot name
        "pay=" + "q" * 61,  # too long for the activity's queue name
        "pay:x=q",  # a major that is no number
        "pay:1.2=q",  # a selector takes the major only
        "p/ay=q",
        "=q",
        "pay=a,pay=b",  # routed twice
        "*=a,*=b",
    ],
)
def test_a_malformed_route_is_refused(text: str) -> None:
    with pytest.raises(CellQueueError):
        CellQueues.parse(text)


def test_a_routed_cell_runs_on_a_worker_with_the_keys_of_an_inline_run() -> None:
    env = WorkflowEnvironment(cell_queues="three-bumps=orders")  # the stepper has no cell
    arn = started(env)
    task_id = open_task(env, arn)
    assert [e["type"] for e in env.history(arn)][-1] == "TaskScheduled"  # waiting for a worker
    calls = Calls()
    handler = CellHandler(modules(calls, "a"), env.log)
    with serving(worker(Recording(env), handler, "a")) as running:
        until(lambda: running.counts["succeeded"] == 1)
    env.run_until_idle()
    assert env.describe(arn)["status"] == "SUCCEEDED"
    assert env.describe(arn)["output"] == '{"total":34}'
    types = [e["type"] for e in env.history(arn)]
    effects = ["StepFlowEffectSucceeded"] * 3  # the worker's, as an inline run's
    assert types[2:8] == ["TaskScheduled", "TaskStarted", *effects, "TaskSucceeded"]
    assert not [t for t in types if t.startswith("Activity")]
    inline = [IdempotencyKey(arn, "Bump", task_id, i, "run").token for i in range(3)]
    assert [token for _, _, token in calls.done] == inline
    # The same cell inline (no route): the same keys for the same attempt.
    inline_env = WorkflowEnvironment(cells=modules(Calls(), "inline"))
    inline_arn = started(inline_env)
    assert inline_env.describe(inline_arn)["output"] == '{"total":34}'


def test_the_handler_refuses_input_that_is_no_cell_task() -> None:
    env = WorkflowEnvironment()
    handler = CellHandler(modules(Calls(), "a"), env.log)
    context = TaskContext(
        token="x.t1.sig.1.sig", idempotency_key="k", activity_arn="", worker_name="w"
    )
    for hostile in [None, 7, [], {"Input": {}}, {"StepFlowCellTask": {"resource": 3}}]:
        with pytest.raises(TaskFailure) as failed:
            handler(hostile, context)
        assert failed.value.error == "StepFlow.Cell.InvalidTask"


def test_a_malformed_setting_is_refused_before_anything_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pydantic import ValidationError
    from stepflow.aws.settings import Settings
    from stepflow.cli import main
    from stepflow.local import LocalStack

    with pytest.raises(ValidationError, match="STEPFLOW_CELL_QUEUES"):
        Settings.model_validate({"TABLE_NAME": "t", "STEPFLOW_CELL_QUEUES": "pay"})
    good = Settings.model_validate({"TABLE_NAME": "t", "STEPFLOW_CELL_QUEUES": "pay:2=q,*=r"})
    assert CellQueues.parse(good.cell_queues).routes == {"pay:2": "q", "*": "r"}
    with pytest.raises(CellQueueError):
        LocalStack(port=0, cell_queues="*=a b").start()
    assert main(["local", "--port", "0", "--cells-queue", "nope"]) == 2
    assert "STEPFLOW_CELL_QUEUES" in capsys.readouterr().err


def inline_and_routed(
    definition: dict[str, Any], payload: Any, tasks: int
) -> tuple[dict[str, Any], dict[str, Any], list[list[str]]]:
    """Run ``definition`` inline, then with every cell on a worker; both ends and histories.

    ``tasks``: how many tasks the worker must be handed (each once).
    """
    inline = WorkflowEnvironment(cells=modules(Calls(), "inline"))
    inline_arn = inline.start(definition, payload)
    inline.run(inline_arn)
    routed = WorkflowEnvironment(cell_queues="*=undo")  # cells and compensations
    arn = routed.start(definition, payload)
    routed.run_until_idle()
    client = Recording(routed)
    handler = CellHandler(modules(Calls(), "a"), routed.log)
    undo = QUEUE_ARN.replace("stepflow-cells-orders", activity_name("undo"))
    served = Worker(client, undo, handler, concurrency=1, heartbeat_seconds=60, grace_seconds=0.2)
    with serving(served):
        until(lambda: routed.describe(arn)["status"] != "RUNNING")
    assert len(client.tasks) == tasks  # each handed out once

    # Per-effect StepFlow* events come with inline results only (cells-workers.md, "Limits").
    def types(events: list[dict[str, Any]]) -> list[str]:
        return [e["type"] for e in events if not e["type"].startswith("StepFlow")]

    histories = [types(inline.history(inline_arn)), types(routed.history(arn))]
    return inline.describe(inline_arn), routed.describe(arn), histories


FIELDS = ("status", "output", "error", "cause")


@pytest.mark.parametrize(
    "payload",
    [
        {"start": 1},
        {"start": "one"},  # the wrong type: StepFlow.Cell.InvalidInput
        {},  # missing
        {"start": 10**30},  # huge
        {"start": 1, "extra": ["x" * 1000] * 50},  # large
        [{"start": 1}],  # not an object
    ],
)
def test_a_cell_on_a_worker_ends_as_it_does_inline(payload: Any) -> None:
    expected, found, (inline_types, routed_types) = inline_and_routed(MACHINE, payload, 1)
    assert {f: found.get(f) for f in FIELDS} == {f: expected.get(f) for f in FIELDS}
    assert routed_types == inline_types


def test_a_compensation_routed_to_a_worker_ends_as_it_does_inline() -> None:
    compensate = "arn:aws:states:::stepflow:saga:compensate"
    saga = {
        "StartAt": "Bump",
        "States": {
            "Bump": {"Type": "Task", "Resource": CELL, "Next": "Undo"},
            "Undo": {"Type": "Task", "Resource": compensate, "End": True},
        },
    }
    expected, found, (inline_types, routed_types) = inline_and_routed(saga, {"start": 1}, 2)
    assert {f: found.get(f) for f in FIELDS} == {f: expected.get(f) for f in FIELDS}
    assert routed_types == inline_types


@pytest.mark.parametrize(
    ("timeouts", "error"),
    [
        ({"TimeoutSeconds": 5}, "States.Timeout"),
        ({"HeartbeatSeconds": 5}, "States.HeartbeatTimeout"),
    ],
)
def test_a_routed_cell_no_worker_serves_times_out_as_a_task(
    timeouts: dict[str, int], error: str
) -> None:
    env = WorkflowEnvironment(cell_queues="*=nobody")
    state = {"Type": "Task", "Resource": CELL, "End": True, **timeouts}
    arn = env.start({"StartAt": "Bump", "States": {"Bump": state}}, {"start": 1})
    env.advance(4)
    assert env.describe(arn)["status"] == "RUNNING"  # waiting on its queue
    env.advance(2)
    assert env.describe(arn)["status"] == "FAILED"
    assert env.describe(arn)["error"] == error
    assert [e["type"] for e in env.history(arn)][-3:-1] == ["TaskStarted", "TaskTimedOut"]


def test_a_cell_queue_that_cannot_be_created_fails_the_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = WorkflowEnvironment(cell_queues="*=orders")

    def denied(name: str, tags: Any) -> None:
        raise PermissionError("AccessDenied: sqs:CreateQueue")

    monkeypatch.setattr(env.queue, "create", denied)
    arn = env.start(MACHINE, {"start": 1})
    env.run(arn)
    described = env.describe(arn)
    assert (described["status"], described["error"]) == ("FAILED", "States.Runtime")
    assert "stepflow worker --cells ... --queue orders" in described["cause"]


def test_the_envelope_carries_every_key_of_the_task_body_to_the_worker() -> None:
    body = {
        "resource": "arn:aws:states:::stepflow:cell:pay",
        "state_name": "Pay",
        "task_id": "t-1",
        "input": {"amount": 3},
        "attempt_id": "a-2",
        "parent_arn": "arn:aws:states:us-east-1:1:execution:m:parent",
        "frame": "b0/i3",
        "role_arn": "arn:aws:iam::1:role/r",
        "execution_role": "arn:aws:iam::1:role/e",
    }
    message = Message("arn:aws:states:us-east-1:1:execution:m:e", "m-1", "task", body)
    assert task_body(envelope(message)) == {**body, "execution_arn": message.execution_arn}
    bare = {k: body[k] for k in ("resource", "state_name", "task_id", "input")}
    bare_message = Message(message.execution_arn, "m-2", "task", bare)
    assert task_body(envelope(bare_message)) == {**bare, "execution_arn": message.execution_arn}
