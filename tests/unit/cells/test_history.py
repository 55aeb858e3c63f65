"""Effects in the execution history (in memory): StepFlowEffect* events before the task's result.

Each test runs a cell through :func:`stepflow.testing.execute` or a
:class:`~stepflow.testing.WorkflowEnvironment` (the one driver the durable path
shares) and reads the history it records; handler calls are counted.
"""

from __future__ import annotations

import io
import itertools
import json
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field
from stepflow.asl import parse
from stepflow.cells import (
    Cell,
    CellContext,
    CellModules,
    CellRegistry,
    EffectCall,
    EffectHandlers,
    HandlerError,
    IdempotencyKey,
)
from stepflow.cells import saga as saga_module
from stepflow.cells.effects import Effect
from stepflow.cli import Progress
from stepflow.engine import RunTask, Start, TaskSucceeded, decide, new_execution
from stepflow.engine.effects import (
    ATTEMPT_BYTES,
    DETAILS_KEY,
    MAX_EFFECT_EVENTS,
    OUTPUT_BYTES,
    effect_reports,
)
from stepflow.limits import Limits
from stepflow.runtime import Message, Stepper
from stepflow.runtime.effect_tally import tallying
from stepflow.runtime.messages import decode_event, encode_event
from stepflow.runtime.outcome import TaskOutcome
from stepflow.testing import WorkflowEnvironment, execute

CELL = "arn:aws:states:::stepflow:cell:three-steps"
DEEP: list[Any] = []
for _ in range(5_000):
    DEEP = [DEEP]
COMPENSATE = "arn:aws:states:::stepflow:saga:compensate"


class Done(BaseModel):
    n: int
    text: str = ""


class Step(Effect[Done]):
    kind: Literal["step"] = "step"
    n: int
    size: int = 0


class Charge(Effect[Done]):
    kind: Literal["charge"] = "charge"
    cents: int


Effects = Annotated[Step | Charge, Field(discriminator="kind")]


class In(BaseModel):
    count: int = 3
    size: int = 0
    charge: int = 0


class Out(BaseModel):
    total: int


class Nope(BaseModel):
    why: str


class ThreeSteps(Cell[In, Out, Nope, Effects]):
    """Requests ``count`` Step effects, then a Charge when ``charge`` is set."""

    name = "three-steps"

    def run(self, ctx: CellContext[Effects], data: In) -> Out:
        total = 0
        for i in range(data.count):
            total += ctx.effect(Step(n=i, size=data.size)).n
        if data.charge:
            total += ctx.effect(Charge(cents=data.charge)).n
        return Out(total=total)


class Crash(BaseException):
    """A process dying mid-cell (no ``except Exception`` catches it)."""


class Handlers:
    """Counting handlers; ``crash_at`` kills the process once at that Step."""

    def __init__(self, crash_at: int | None = None) -> None:
        self.calls: list[tuple[str, int]] = []
        self.crash_at = crash_at

    def step(self, effect: Step, call: EffectCall) -> Done:
        if effect.n == self.crash_at:
            self.crash_at = None
            raise Crash
        self.calls.append(("step", effect.n))
        return Done(n=effect.n, text="x" * effect.size)

    def charge(self, effect: Charge, call: EffectCall) -> Done:
        self.calls.append(("charge", effect.cents))
        raise HandlerError("Card.Declined", f"{effect.cents} cents refused")

    def modules(self) -> CellModules:
        modules = CellModules(CellRegistry(), EffectHandlers())
        modules.cells.register(ThreeSteps)
        modules.handlers.register(Step, self.step)
        modules.handlers.register(Charge, self.charge)
        return modules


def definition(resource: str = CELL, **task: Any) -> dict[str, Any]:
    return {
        "StartAt": "Work",
        "States": {"Work": {"Type": "Task", "Resource": resource, "End": True, **task}},
    }


def types(history: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in history]


def effect_events(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in history if e["type"].startswith("StepFlow")]


def assert_chained(history: list[dict[str, Any]]) -> None:
    """Ids run 1..n and every event follows the one before it (one thread)."""
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    for before, event in itertools.pairwise(history):
        assert event["previousEventId"] == before["id"], event


def test_three_effects_show_as_three_events_then_task_succeeded() -> None:
    handlers = Handlers()
    result = execute(definition(), {"count": 3}, cells=handlers.modules(), name="run-1")
    assert result.status == "SUCCEEDED", result.cause
    assert handlers.calls == [("step", 0), ("step", 1), ("step", 2)]
    assert types(result.history)[3:8] == [
        "TaskStarted",
        "StepFlowEffectSucceeded",
        "StepFlowEffectSucceeded",
        "StepFlowEffectSucceeded",
        "TaskSucceeded",
    ]
    assert_chained(result.history)
    arn = "arn:aws:states:us-east-1:123456789012:execution:StateMachine:run-1"
    details = [e[DETAILS_KEY] for e in effect_events(result.history)]
    assert details == [
        {
            "cell": "three-steps",
            "effect": "Step",
            "index": i,
            "scope": "run",
            "idempotencyKey": IdempotencyKey(arn, "Work", "t1", i, "run").token,
            "replayed": False,
            "output": json.dumps({"n": i, "text": ""}, separators=(",", ":")),
            "outputDetails": {"truncated": False},
        }
        for i in range(3)
    ]


def test_a_failed_effect_shows_as_step_flow_effect_failed_before_task_failed() -> None:
    handlers = Handlers()
    result = execute(definition(), {"count": 1, "charge": 250}, cells=handlers.modules())
    assert (result.status, result.error) == ("FAILED", "Card.Declined")
    assert handlers.calls == [("step", 0), ("charge", 250)]
    assert types(result.history)[4:7] == [
        "StepFlowEffectSucceeded",
        "StepFlowEffectFailed",
        "TaskFailed",
    ]
    failed = result.history[5][DETAILS_KEY]
    assert failed["effect"] == "Charge" and failed["index"] == 1
    assert (failed["error"], failed["cause"]) == ("Card.Declined", "250 cents refused")
    assert "output" not in failed
    assert_chained(result.history)


def test_a_rerun_after_a_crash_marks_the_replayed_effects() -> None:
    handlers = Handlers(crash_at=2)
    env = WorkflowEnvironment(cells=handlers.modules())
    arn = env.start(parse(definition()), {"count": 3})
    with pytest.raises(Crash):
        env.run(arn)
    assert handlers.calls == [("step", 0), ("step", 1)]
    env.bus.now += 1_000  # the crashed stepper's task lease runs out
    env.run(arn)
    assert env.result(arn).status == "SUCCEEDED"
    assert handlers.calls == [("step", 0), ("step", 1), ("step", 2)]  # 0-1 not again, 2 once
    history = env.history(arn)
    effects = effect_events(history)
    assert types(effects) == [
        "StepFlowEffectReplayed",
        "StepFlowEffectReplayed",
        "StepFlowEffectSucceeded",
    ]
    assert [e[DETAILS_KEY]["replayed"] for e in effects] == [True, True, False]
    assert [e[DETAILS_KEY]["index"] for e in effects] == [0, 1, 2]
    assert types(history).count("TaskSucceeded") == 1
    assert_chained(history)


def test_every_retry_attempt_shows_its_own_effects() -> None:
    handlers = Handlers()
    retry = {"Retry": [{"ErrorEquals": ["Card.Declined"], "MaxAttempts": 1}]}
    result = execute(definition(**retry), {"count": 1, "charge": 5}, cells=handlers.modules())
    assert result.error == "Card.Declined"
    # a retry is a new attempt (a new idempotency key): its effects run again and show again
    assert handlers.calls == [("step", 0), ("charge", 5)] * 2
    effects = effect_events(result.history)
    assert types(effects) == ["StepFlowEffectSucceeded", "StepFlowEffectFailed"] * 2
    keys = {e[DETAILS_KEY]["idempotencyKey"] for e in effects}
    assert len(keys) == 4


def test_a_result_delivered_twice_records_its_effects_once() -> None:
    machine = parse(definition())
    state = new_execution(name="e", input={"count": 2}, now=0.0)
    started = decide(machine, state, Start(), 0.0)
    (task,) = started.commands
    reports = effect_reports(
        [
            {"index": i, "effect": "Step", "token": f"k{i}", "replayed": False, "ok": True,
             "result": {"n": i}, "scope": "run"}
            for i in range(2)
        ]
    )  # fmt: skip
    assert isinstance(task, RunTask)
    result = TaskSucceeded(task.task_id, {"total": 1}, effects=reports)
    first = decide(machine, started.state, result, 1.0)
    again = decide(machine, first.state, result, 2.0)
    assert types(first.events).count("StepFlowEffectSucceeded") == 2
    assert again.events == [] and again.state.next_event_id == first.state.next_event_id


def test_effects_survive_the_message_encoding_and_json() -> None:
    reports = effect_reports(
        [{"index": 0, "effect": "Step", "token": "k", "replayed": True, "ok": True, "result": 1}]
    )
    event = TaskSucceeded("t1", {"a": 1}, effects=reports)
    assert decode_event(json.loads(json.dumps(encode_event(event)))) == event


def test_a_compensation_task_shows_its_effects_as_compensation_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the saga part returns its compensations' traces (scope compensate:<entry>)
    def compensate(runtime: Any, body: dict[str, Any]) -> TaskOutcome:
        traces = (
            {"index": 0, "effect": "Refund", "token": "r", "replayed": True, "ok": True,
             "result": {"n": 1}, "scope": "compensate:e2"},
            {"index": 0, "effect": "Release", "token": "s", "replayed": False, "ok": False,
             "error": "Stock.Gone", "cause": "no", "scope": "compensate:e1"},
        )  # fmt: skip
        outcome = TaskOutcome.failed("Stock.Gone", "no")
        return TaskOutcome(False, None, outcome.error, outcome.cause, effects=traces)

    monkeypatch.setattr(saga_module, "compensate", compensate)
    result = execute(definition(COMPENSATE), {}, cells=Handlers().modules())
    assert result.error == "Stock.Gone"
    effects = effect_events(result.history)
    assert types(effects) == [
        "StepFlowCompensationEffectReplayed",
        "StepFlowCompensationEffectFailed",
    ]
    assert [e[DETAILS_KEY]["scope"] for e in effects] == ["compensate:e2", "compensate:e1"]
    assert "cell" not in effects[0][DETAILS_KEY]  # the task names no cell
    assert types(result.history)[-2:] == ["TaskFailed", "ExecutionFailed"]


def test_a_huge_effect_output_is_truncated_as_aws_truncates() -> None:
    handlers = Handlers()
    result = execute(definition(), {"count": 12, "size": 20_000}, cells=handlers.modules())
    assert result.status == "SUCCEEDED", result.cause
    details = [e[DETAILS_KEY] for e in effect_events(result.history)]
    assert len(details) == 12
    first = details[0]
    assert first["outputDetails"] == {"truncated": True}
    assert len(first["output"].encode()) == OUTPUT_BYTES
    shown = sum(len(d["output"].encode()) for d in details)
    assert shown <= ATTEMPT_BYTES
    assert details[-1] == {**details[-1], "output": "", "outputDetails": {"truncated": True}}


def test_past_the_event_bound_the_rest_of_the_effects_are_counted_in_one_event() -> None:
    handlers = Handlers()
    result = execute(definition(), {"count": MAX_EFFECT_EVENTS + 40}, cells=handlers.modules())
    assert result.status == "SUCCEEDED", result.cause
    assert len(handlers.calls) == MAX_EFFECT_EVENTS + 40  # all performed, once
    effects = effect_events(result.history)
    assert types(effects) == ["StepFlowEffectSucceeded"] * MAX_EFFECT_EVENTS + [
        "StepFlowEffectsOmitted"
    ]
    assert effects[-1][DETAILS_KEY] == {"cell": "three-steps", "omitted": 40}
    assert types(result.history)[-3:] == ["TaskSucceeded", "TaskStateExited", "ExecutionSucceeded"]
    assert_chained(result.history)


def test_bounding_reports_twice_changes_nothing() -> None:
    traces: list[Any] = [
        {"index": i, "effect": "E", "token": "t", "ok": i % 3 != 0, "result": "x" * (i * 97),
         "error": "Bad", "cause": "c" * (i * 89), "replayed": i % 2 == 0}
        for i in range(MAX_EFFECT_EVENTS + 7)
    ]  # fmt: skip
    once = effect_reports(traces)
    assert effect_reports(list(once)) == once
    assert once[-1] == {"omitted": 7}
    shown = sum(len(r.get("output", "").encode()) + len(r.get("cause", "").encode()) for r in once)
    assert shown <= ATTEMPT_BYTES


def test_effects_past_the_history_cap_are_counted_in_one_event_and_the_execution_goes_on() -> None:
    handlers = Handlers()
    limits = Limits(max_events_per_execution=50)
    result = execute(definition(), {"count": 200}, cells=handlers.modules(), limits=limits)
    assert result.status == "SUCCEEDED", result.cause
    assert len(handlers.calls) == 200  # all performed, once
    effects = effect_events(result.history)
    # recorded while the history is under its cap (ids 5..49), the rest counted
    assert types(effects) == ["StepFlowEffectSucceeded"] * 45 + ["StepFlowEffectsOmitted"]
    assert effects[-1][DETAILS_KEY] == {"cell": "three-steps", "omitted": 155}
    assert types(result.history)[-3:] == ["TaskSucceeded", "TaskStateExited", "ExecutionSucceeded"]
    assert len(result.history) - len(effects) == 7  # the cap counts these only
    assert_chained(result.history)


@pytest.mark.parametrize("count", [0, 200])
def test_the_history_cap_still_fails_a_runaway_of_ordinary_events(count: int) -> None:
    # 7 ordinary events (Started, Entered, Scheduled, Started, Succeeded, Exited, Succeeded)
    handlers = Handlers()
    limits = Limits(max_events_per_execution=6)
    result = execute(definition(), {"count": count}, cells=handlers.modules(), limits=limits)
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "max_events_per_execution" in (result.cause or "")
    assert len(result.history) - len(effect_events(result.history)) == 6
    assert types(result.history)[-2:] == ["TaskSucceeded", "ExecutionFailed"]
    if count:  # TaskStarted is event 4: room for one effect event under the cap
        effects = effect_events(result.history)
        assert types(effects) == ["StepFlowEffectSucceeded", "StepFlowEffectsOmitted"]
        assert effects[-1][DETAILS_KEY]["omitted"] == 199


def test_an_execution_full_of_effect_events_can_still_be_redriven() -> None:
    handlers = Handlers()
    limits = Limits(max_events_per_execution=60)
    env = WorkflowEnvironment(cells=handlers.modules(), limits=limits)
    arn = env.start(definition(), {"count": 200, "charge": 5})
    env.run(arn)
    first = env.result(arn)
    assert (first.status, first.error) == ("FAILED", "Card.Declined")
    assert len(first.history) > 60  # effect events past the cap's count
    env.api.call("RedriveExecution", {"executionArn": arn})  # the cap counts 7 events
    env.run(arn)
    result = env.result(arn)
    assert (result.status, result.error) == ("FAILED", "Card.Declined")
    assert handlers.calls.count(("charge", 5)) == 2  # a new attempt: performed again
    assert types(result.history).count("ExecutionRedriven") == 1


@pytest.mark.parametrize(
    "effects",
    [
        ("not a dict", 3, None),
        ({"index": "x", "effect": {"deep": 1}, "ok": "yes", "cause": 7},),
        ({"index": True, "scope": "compensate:" + "z" * 10_000, "result": object()},),
        ({"index": 0, "effect": "\ud800", "result": DEEP, "cause": "\udfff" * 9_000},),
    ],
)
def test_malformed_effect_reports_never_break_the_engine(effects: tuple[Any, ...]) -> None:
    machine = parse(definition())
    state = new_execution(name="e", input={}, now=0.0)
    started = decide(machine, state, Start(), 0.0)
    task = started.commands[0]
    assert isinstance(task, RunTask)
    done = decide(machine, started.state, TaskSucceeded(task.task_id, 1, effects=effects), 1.0)
    assert done.state.status == "SUCCEEDED"
    for event in done.events:
        json.dumps(event, ensure_ascii=False).encode()  # JSON, and UTF-8 every log can store


def test_express_item_batches_run_each_items_effects_once_and_count_them() -> None:
    handlers = Handlers()
    processor = {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
        "StartAt": "Work",
        "States": {"Work": {"Type": "Task", "Resource": CELL, "End": True}},
    }
    machine = {"StartAt": "M", "States": {"M": {"Type": "Map", "ItemProcessor": processor,
                                                 "End": True}}}  # fmt: skip
    with tallying() as tally:
        result = execute(machine, [{"count": 2}, {"count": 3}], cells=handlers.modules())
    assert result.status == "SUCCEEDED", result.cause
    assert json.loads(result.output or "") == [{"total": 1}, {"total": 3}]
    assert sorted(handlers.calls) == sorted([("step", i) for i in (0, 1, 0, 1, 2)])
    assert (tally.performed, tally.replayed, tally.failed, tally.tasks) == (5, 0, 0, 2)
    # AWS keeps no history for EXPRESS executions: the parent's shows none of their effects
    assert effect_events(result.history) == []


def test_stepflow_run_prints_the_effect_events_readably() -> None:
    handlers = Handlers(crash_at=None)
    out = io.StringIO()
    progress = Progress(definition(), out)
    execute(definition(), {"count": 2, "charge": 3}, cells=handlers.modules(), on_event=progress)
    lines = [line.split("  ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines == [
        "▶ Work (Task)",
        "  ⚙ call stepflow:cell:three-steps",
        "  ✦ effect #0 Step",
        "  ✦ effect #1 Step",
        "  ✗ effect #2 Charge: Card.Declined: 3 cents refused",
        "  ✗ Card.Declined: 3 cents refused",
    ]
    progress(
        {
            "id": 99,
            "previousEventId": 0,
            "timestamp": 0,
            "type": "StepFlowCompensationEffectReplayed",
            DETAILS_KEY: {"index": 0, "effect": "Refund", "scope": "compensate:e1"},
        }
    )
    assert out.getvalue().splitlines()[-1].endswith("↺ undo effect #0 Refund (replayed)")


@pytest.mark.parametrize("inline", [True, False])
def test_every_message_delivered_twice_still_shows_each_effect_once(inline: bool) -> None:
    def twice(stepper: Stepper, batch: list[Message]) -> list[tuple[Message, Exception | None]]:
        failed = stepper.handle_batch(batch)
        failed += stepper.handle_batch(batch)  # a standard queue's duplicate delivery
        return [(message, exc) for message, exc in failed]

    handlers = Handlers()
    env = WorkflowEnvironment(cells=handlers.modules(), deliver=twice)
    env.stepper.inline_tasks = inline  # False: tasks and their results travel as messages
    arn = env.start(parse(definition()), {"count": 3})
    with tallying() as tally:
        env.run(arn)
    assert env.result(arn).status == "SUCCEEDED"
    assert handlers.calls == [("step", 0), ("step", 1), ("step", 2)]
    assert (tally.performed, tally.replayed, tally.tasks) == (3, 0, 1)  # the duplicate: no run
    history = env.history(arn)
    assert types(effect_events(history)) == ["StepFlowEffectSucceeded"] * 3
    assert types(history).count("TaskSucceeded") == 1
    assert_chained(history)
