"""The engine side of a distributed Map: the run spec, MapRun events, MapRunFinished, aborts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from stepflow.asl import parse
from stepflow.asl.machine import StateMachine
from stepflow.engine import (
    CancelMapRun,
    Decision,
    ExecutionState,
    MapRunFinished,
    Redrive,
    Start,
    StartMapRun,
    Stop,
    TaskFailed,
    TimerFired,
    decide,
    new_execution,
)
from stepflow.engine.model import RunTask, StartTimer

from tests.unit.map_run_double import FakeMapRuns

FN = "arn:aws:lambda:us-east-1:123456789012:function:work"
PROCESSOR = {
    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
    "StartAt": "P",
    "States": {"P": {"Type": "Pass", "End": True}},
}
READER = {
    "Resource": "arn:aws:states:::s3:getObject",
    "ReaderConfig": {"InputType": "JSON"},
    "Parameters": {"Bucket.$": "$.Bucket", "Key.$": "$.Key"},
}


def machine(map_state: dict[str, Any], *, before: dict[str, Any] | None = None) -> StateMachine:
    states: dict[str, Any] = {"M": {"Type": "Map", "ItemProcessor": PROCESSOR, **map_state}}
    start = "M"
    if before is not None:
        states["B"] = {**before, "Next": "M"}
        start = "B"
    if "Next" not in map_state and "End" not in map_state:
        states["M"]["End"] = True
    return parse({"StartAt": start, "States": states})


def start(sm: StateMachine, input: Any, now: float = 1000.0) -> tuple[Decision, StartMapRun]:
    state = new_execution(name="e1", input=input, now=now, state_machine_name="sm")
    decision = decide(sm, state, Start(), now)
    runs = [c for c in decision.commands if isinstance(c, StartMapRun)]
    assert len(runs) == 1, decision.events
    return decision, runs[0]


def types(decision: Decision) -> list[str]:
    return [e["type"] for e in decision.events]


def test_a_distributed_map_asks_for_one_map_run_with_its_spec() -> None:
    sm = machine({"ItemReader": READER, "Label": "Lbl", "MaxConcurrency": 3})
    decision, run = start(sm, {"Bucket": "b", "Key": "k.json"})
    assert types(decision) == [
        "ExecutionStarted",
        "MapStateEntered",
        "MapStateStarted",
        "MapRunStarted",
    ]
    started = decision.events[-1]["mapRunStartedEventDetails"]["mapRunArn"]
    assert started == run.spec["map_run_arn"]
    assert started == f"arn:aws:states:us-east-1:123456789012:mapRun:sm/Lbl:{run.run_id}"
    assert decision.events[2]["mapStateStartedEventDetails"] == {"length": 0}
    spec = run.spec
    assert spec["reader"] == {
        "resource": "arn:aws:states:::s3:getObject",
        "parameters": {"Bucket": "b", "Key": "k.json"},
        "reader_config": {"InputType": "JSON"},
        "max_items": None,
    }
    assert spec["items"] is None and spec["batcher"] is None and spec["writer"] is None
    assert spec["max_concurrency"] == 3 and spec["label"] == "Lbl"
    assert spec["machine"] == "/M" and spec["state_name"] == "M"
    assert spec["execution_type"] == "STANDARD"
    assert spec["tolerated_count"] is None and spec["tolerated_percentage"] is None
    assert spec["scope"]["input"] == {"Bucket": "b", "Key": "k.json"}
    assert spec["scope"]["context"]["State"]["Name"] == "M"
    assert decision.state.frames[""].map_run == run.run_id
    assert decision.state.frames[""].phase == "children"
    json.dumps(spec)  # plain JSON, as the runtime stores it
    assert decision.state.status == "RUNNING"


def test_without_a_reader_the_items_travel_in_the_spec() -> None:
    sm = machine({"ItemsPath": "$.xs"})
    decision, run = start(sm, {"xs": [1, 2, 3]})
    assert run.spec["items"] == [1, 2, 3] and run.spec["reader"] is None
    assert decision.events[2]["mapStateStartedEventDetails"] == {"length": 3}


def test_items_that_are_not_an_array_fail_before_any_run() -> None:
    sm = machine({"ItemsPath": "$.xs"})
    state = new_execution(name="e1", input={"xs": 5}, now=1.0)
    decision = decide(sm, state, Start(), 1.0)
    assert not [c for c in decision.commands if isinstance(c, StartMapRun)]
    assert "MapRunStarted" not in types(decision)
    assert decision.state.error == "States.Runtime"
    assert "Map state input must be an array but was: 5" in (decision.state.cause or "")


def test_map_run_succeeded_gives_the_state_its_result_through_result_selector() -> None:
    sm = machine(
        {
            "ItemsPath": "$.xs",
            "ResultSelector": {"n.$": "States.ArrayLength($)"},
            "ResultPath": "$.out",
        }
    )
    decision, run = start(sm, {"xs": [1, 2]})
    done = decide(sm, decision.state, MapRunFinished(run.run_id, "SUCCEEDED", [10, 20]), 1001.0)
    assert types(done) == [
        "MapRunSucceeded",
        "MapStateSucceeded",
        "MapStateExited",
        "ExecutionSucceeded",
    ]
    assert done.state.output == {"xs": [1, 2], "out": {"n": 2}}
    assert done.state.frames[""].map_run is None


def test_a_stale_or_duplicate_map_run_finished_is_ignored() -> None:
    sm = machine({"ItemsPath": "$.xs"})
    decision, run = start(sm, {"xs": [1]})
    stale = decide(sm, decision.state, MapRunFinished("other", "SUCCEEDED", []), 1001.0)
    assert stale.events == [] and stale.commands == [] and stale.state.status == "RUNNING"
    done = decide(sm, decision.state, MapRunFinished(run.run_id, "SUCCEEDED", [1]), 1001.0)
    again = decide(sm, done.state, MapRunFinished(run.run_id, "SUCCEEDED", [2]), 1002.0)
    assert again.events == [] and again.state.output == [1]


def test_a_failed_run_records_map_run_failed_with_aws_details_and_fails_the_state() -> None:
    sm = machine({"ItemReader": READER})
    decision, run = start(sm, {"Bucket": "b", "Key": "k"})
    event = MapRunFinished(
        run.run_id,
        "FAILED",
        error="States.ItemReaderFailed",
        cause="Attempting to map over non-iterable node.",
    )
    failed = decide(sm, decision.state, event, 1001.0)
    assert types(failed) == ["MapRunFailed", "MapStateFailed", "ExecutionFailed"]
    assert failed.events[0]["mapRunFailedEventDetails"] == {
        "error": "States.ItemReaderFailed",
        "cause": "Attempting to map over non-iterable node.",
    }
    assert (failed.state.error, failed.state.cause) == (
        "States.ItemReaderFailed",
        "Attempting to map over non-iterable node.",
    )
    assert not [c for c in failed.commands if isinstance(c, CancelMapRun)]


def test_catch_sees_the_run_error() -> None:
    sm = parse(
        {
            "StartAt": "M",
            "States": {
                "M": {
                    "Type": "Map",
                    "ItemProcessor": PROCESSOR,
                    "ItemsPath": "$.xs",
                    "Catch": [
                        {
                            "ErrorEquals": ["States.ExceedToleratedFailureThreshold"],
                            "ResultPath": "$.err",
                            "Next": "Done",
                        }
                    ],
                    "End": True,
                },
                "Done": {"Type": "Succeed"},
            },
        }
    )
    decision, run = start(sm, {"xs": [1]})
    cause = "The specified tolerated failure threshold was exceeded"
    event = MapRunFinished(
        run.run_id, "FAILED", error="States.ExceedToleratedFailureThreshold", cause=cause
    )
    caught = decide(sm, decision.state, event, 1001.0)
    assert types(caught)[:3] == ["MapRunFailed", "MapStateFailed", "MapStateExited"]
    assert caught.state.output == {
        "xs": [1],
        "err": {"Error": "States.ExceedToleratedFailureThreshold", "Cause": cause},
    }


def test_a_retry_starts_a_new_run_with_a_new_id() -> None:
    sm = machine(
        {
            "ItemsPath": "$.xs",
            "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 2, "MaxAttempts": 1}],
        }
    )
    decision, run = start(sm, {"xs": [1]})
    failed = decide(sm, decision.state, MapRunFinished(run.run_id, "FAILED", error="E"), 1001.0)
    assert types(failed) == ["MapRunFailed"]
    timer = next(c for c in failed.commands if isinstance(c, StartTimer))
    rerun = decide(sm, failed.state, TimerFired(timer.timer_id), timer.fire_at)
    (second,) = [c for c in rerun.commands if isinstance(c, StartMapRun)]
    assert second.run_id != run.run_id
    assert types(rerun) == ["MapStateStarted", "MapRunStarted"]
    # the first run's late report changes nothing
    late = decide(sm, rerun.state, MapRunFinished(run.run_id, "SUCCEEDED", [0]), 1004.0)
    assert late.events == []
    done = decide(sm, rerun.state, MapRunFinished(second.run_id, "SUCCEEDED", [9]), 1005.0)
    assert done.state.output == [9]


def test_run_ids_are_deterministic_and_distinct_per_execution() -> None:
    sm = machine({"ItemsPath": "$.xs"})
    _, a = start(sm, {"xs": [1]})
    _, b = start(sm, {"xs": [1]})
    assert a.run_id == b.run_id  # pure: the same decision gives the same id
    state = new_execution(name="e2", input={"xs": [1]}, now=1000.0, state_machine_name="sm")
    other = decide(sm, state, Start(), 1000.0)
    (c,) = [c for c in other.commands if isinstance(c, StartMapRun)]
    assert c.run_id != a.run_id


def test_stopping_the_execution_cancels_the_run_once() -> None:
    sm = machine({"ItemsPath": "$.xs"})
    decision, run = start(sm, {"xs": [1]})
    stopped = decide(sm, decision.state, Stop(), 1001.0)
    assert [c for c in stopped.commands if isinstance(c, CancelMapRun)] == [
        CancelMapRun(run.run_id)
    ]
    assert stopped.state.status == "ABORTED"
    late = decide(sm, stopped.state, MapRunFinished(run.run_id, "SUCCEEDED", [1]), 1002.0)
    assert late.events == [] and late.commands == []


def test_a_failing_parallel_sibling_aborts_the_run_once() -> None:
    sm = parse(
        {
            "StartAt": "Par",
            "States": {
                "Par": {
                    "Type": "Parallel",
                    "End": True,
                    "Branches": [
                        {
                            "StartAt": "M",
                            "States": {
                                "M": {
                                    "Type": "Map",
                                    "ItemProcessor": PROCESSOR,
                                    "ItemsPath": "$.xs",
                                    "End": True,
                                }
                            },
                        },
                        {
                            "StartAt": "T",
                            "States": {"T": {"Type": "Task", "Resource": FN, "End": True}},
                        },
                    ],
                }
            },
        }
    )
    state = new_execution(name="e1", input={"xs": [1]}, now=1.0)
    decision = decide(sm, state, Start(), 1.0)
    (run,) = [c for c in decision.commands if isinstance(c, StartMapRun)]
    task = next(c for c in decision.commands if isinstance(c, RunTask))
    failed = decide(sm, decision.state, TaskFailed(task.task_id, "Boom", "no"), 2.0)
    cancels = [c for c in failed.commands if isinstance(c, CancelMapRun)]
    assert cancels == [CancelMapRun(run.run_id)]
    assert "MapRunAborted" in types(failed)
    assert failed.state.status == "FAILED" and failed.state.error == "Boom"


def test_max_items_path_reads_a_string_variable() -> None:
    """The dev case MAP_STATE_REFERENCE_IN_MAX_ITEMS_PATH: maxItems is "2"."""
    reader = {**READER, "ReaderConfig": {"InputType": "JSON", "MaxItemsPath": "$maxItems"}}
    sm = machine(
        {"ItemReader": reader, "MaxConcurrency": 1},
        before={"Type": "Pass", "Assign": {"maxItems": "2"}},
    )
    _, run = start(sm, {"Bucket": "b", "Key": "k"})
    assert run.spec["reader"]["max_items"] == 2
    assert run.spec["scope"]["variables"] == {"maxItems": "2"}


@pytest.mark.parametrize(
    ("value", "expected"), [(0, None), (2, 2), (100000001, 100_000_000), ("3", 3)]
)
def test_max_items_values(value: Any, expected: int | None) -> None:
    reader = {**READER, "ReaderConfig": {"InputType": "CSV", "MaxItemsPath": "$.MaxItems"}}
    _, run = start(machine({"ItemReader": reader}), {"Bucket": "b", "Key": "k", "MaxItems": value})
    assert run.spec["reader"]["max_items"] == expected


def test_a_negative_max_items_fails_the_run_it_started_as_aws() -> None:
    reader = {**READER, "ReaderConfig": {"InputType": "CSV", "MaxItemsPath": "$.MaxItems"}}
    sm = machine({"ItemReader": reader})
    state = new_execution(name="e1", input={"Bucket": "b", "Key": "k", "MaxItems": -1}, now=1.0)
    decision = decide(sm, state, Start(), 1.0)
    assert types(decision) == [
        "ExecutionStarted",
        "MapStateEntered",
        "MapStateStarted",
        "MapRunStarted",
        "MapRunFailed",
        "MapStateFailed",
        "ExecutionFailed",
    ]
    assert (decision.state.error, decision.state.cause) == (
        "States.ItemReaderFailed",
        "field MaxItems must be positive",
    )
    assert not [c for c in decision.commands if isinstance(c, StartMapRun)]


def test_a_missing_max_items_path_is_a_runtime_error() -> None:
    reader = {**READER, "ReaderConfig": {"InputType": "CSV", "MaxItemsPath": "$.nope"}}
    state = new_execution(name="e1", input={"Bucket": "b", "Key": "k"}, now=1.0)
    decision = decide(machine({"ItemReader": reader}), state, Start(), 1.0)
    assert decision.state.error == "States.Runtime"
    assert "Invalid path '$.nope'" in (decision.state.cause or "")


def test_jsonata_reader_batcher_and_writer_are_evaluated_on_the_input() -> None:
    sm = parse(
        {
            "QueryLanguage": "JSONata",
            "StartAt": "M",
            "States": {
                "M": {
                    "Type": "Map",
                    "ItemReader": {
                        "Resource": "arn:aws:states:::s3:getObject",
                        "ReaderConfig": {"InputType": "JSON", "MaxItems": "{% $states.input.n %}"},
                        "Arguments": {"Bucket": "{% $states.input.Bucket %}", "Key": "k"},
                    },
                    "ItemBatcher": {
                        "MaxItemsPerBatch": "{% $states.input.per %}",
                        "MaxInputBytesPerBatch": 150000,
                        "BatchInput": {"At": "{% $states.context.State.EnteredTime %}"},
                    },
                    "ResultWriter": {
                        "Resource": "arn:aws:states:::s3:putObject",
                        "Arguments": {"Bucket": "out", "Prefix": "{% $states.input.p %}"},
                        "WriterConfig": {"OutputType": "JSONL", "Transformation": "COMPACT"},
                    },
                    "ToleratedFailurePercentage": "{% 5 %}",
                    "ItemProcessor": PROCESSOR,
                    "End": True,
                }
            },
        }
    )
    _, run = start(sm, {"Bucket": "b", "n": 2, "per": 2, "p": "pre"})
    spec = run.spec
    assert spec["reader"]["parameters"] == {"Bucket": "b", "Key": "k"}
    assert spec["reader"]["max_items"] == 2
    assert spec["batcher"] == {
        "max_items": 2,
        "max_bytes": 150000,
        "batch_input": {"At": spec["scope"]["context"]["State"]["EnteredTime"]},
    }
    assert spec["writer"] == {
        "resource": "arn:aws:states:::s3:putObject",
        "parameters": {"Bucket": "out", "Prefix": "pre"},
        "writer_config": {"OutputType": "JSONL", "Transformation": "COMPACT"},
    }
    assert spec["tolerated_percentage"] == 5.0


def test_jsonpath_batcher_paths_and_tolerated_limits() -> None:
    sm = machine(
        {
            "ItemsPath": "$.xs",
            "ItemBatcher": {
                "MaxItemsPerBatchPath": "$.per",
                "BatchInput": {"k.$": "$.k"},
            },
            "ToleratedFailureCountPath": "$.tc",
            "ToleratedFailurePercentage": 12.5,
            "MaxConcurrencyPath": "$.mc",
        }
    )
    _, run = start(sm, {"xs": [1, 2, 3], "per": 2, "k": "v", "tc": 1, "mc": 4})
    assert run.spec["batcher"] == {"max_items": 2, "max_bytes": None, "batch_input": {"k": "v"}}
    assert run.spec["tolerated_count"] == 1 and run.spec["tolerated_percentage"] == 12.5
    assert run.spec["max_concurrency"] == 4


def test_a_negative_max_concurrency_path_fails_before_the_run() -> None:
    sm = machine({"ItemsPath": "$.xs", "MaxConcurrencyPath": "$.mc"})
    state = new_execution(name="e1", input={"xs": [1], "mc": -1}, now=1.0)
    decision = decide(sm, state, Start(), 1.0)
    assert "MapRunStarted" not in types(decision)
    assert decision.state.error == "States.Runtime"
    assert "Expected non-negative integer for MaxConcurrency" in (decision.state.cause or "")


def test_redrive_runs_the_same_map_run_again() -> None:
    sm = machine({"ItemsPath": "$.xs"})
    decision, run = start(sm, {"xs": [1, 2]})
    failed = decide(sm, decision.state, MapRunFinished(run.run_id, "FAILED", error="E"), 1001.0)
    assert failed.state.status == "FAILED"
    redriven = decide(sm, failed.state, Redrive(), 2000.0)
    (again,) = [c for c in redriven.commands if isinstance(c, StartMapRun)]
    assert again.run_id == run.run_id and again.spec.get("redrive") is True
    assert types(redriven) == ["ExecutionRedriven", "MapStateEntered", "MapRunRedriven"]
    details = redriven.events[-1]["mapRunRedrivenEventDetails"]
    assert details == {"mapRunArn": run.spec["map_run_arn"], "redriveCount": 1}
    done = decide(sm, redriven.state, MapRunFinished(run.run_id, "SUCCEEDED", [1, 2]), 2001.0)
    assert done.state.status == "SUCCEEDED" and done.state.output == [1, 2]


def test_inline_maps_start_no_map_run() -> None:
    sm = parse(
        {
            "StartAt": "M",
            "States": {
                "M": {
                    "Type": "Map",
                    "ItemsPath": "$.xs",
                    "ItemProcessor": {
                        "StartAt": "P",
                        "States": {"P": {"Type": "Pass", "End": True}},
                    },
                    "End": True,
                }
            },
        }
    )
    state = new_execution(name="e1", input={"xs": [1, 2]}, now=1.0)
    decision = decide(sm, state, Start(), 1.0)
    assert not [c for c in decision.commands if isinstance(c, StartMapRun)]
    assert decision.state.output == [1, 2]


# --- through a test double of the runtime side --------------------------------------------


def run_with_fake(
    sm: StateMachine, input: Any, runs: FakeMapRuns, handlers: dict[str, Any] | None = None
) -> ExecutionState:
    state = new_execution(name="e1", input=input, now=1.0, state_machine_name="sm")
    decision = decide(sm, state, Start(), 1.0)
    return runs.drive(sm, decision, handlers or {})


def test_fake_runtime_map_run_result_selector_and_catch_in_memory() -> None:
    sm = parse(
        {
            "StartAt": "M",
            "States": {
                "M": {
                    "Type": "Map",
                    "ItemsPath": "$.xs",
                    "ItemSelector": {"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"},
                    "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"b.$": "$.tag"}},
                    "ItemProcessor": {
                        **PROCESSOR,
                        "States": {"P": {"Type": "Task", "Resource": FN, "End": True}},
                    },
                    "ResultSelector": {"batches.$": "States.ArrayLength($)", "all.$": "$"},
                    "End": True,
                }
            },
        }
    )
    runs = FakeMapRuns()
    handlers = {FN: lambda batch: len(batch["Items"])}
    final = run_with_fake(sm, {"xs": ["a", "b", "c"], "tag": "t"}, runs, handlers)
    assert final.status == "SUCCEEDED"
    assert final.output == {"batches": 2, "all": [2, 1]}
    assert runs.inputs == [
        {"BatchInput": {"b": "t"}, "Items": [{"v": "a", "i": 0}, {"v": "b", "i": 1}]},
        {"BatchInput": {"b": "t"}, "Items": [{"v": "c", "i": 2}]},
    ]
    assert runs.started == 1


def test_fake_runtime_a_failing_child_is_caught() -> None:
    sm = parse(
        {
            "StartAt": "M",
            "States": {
                "M": {
                    "Type": "Map",
                    "ItemsPath": "$.xs",
                    "ToleratedFailureCount": 0,
                    "ItemProcessor": {
                        **PROCESSOR,
                        "States": {"P": {"Type": "Task", "Resource": FN, "End": True}},
                    },
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "C"}],
                    "End": True,
                },
                "C": {"Type": "Pass", "End": True},
            },
        }
    )

    def work(x: int) -> int:
        if x == 2:
            raise RuntimeError("bad")
        return x

    final = run_with_fake(sm, {"xs": [1, 2]}, FakeMapRuns(), {FN: work})
    assert final.status == "SUCCEEDED"
    assert final.output["Error"] == "States.ExceedToleratedFailureThreshold"


def test_fake_runtime_reports_each_run_once() -> None:
    runs = FakeMapRuns()
    final = run_with_fake(machine({"ItemsPath": "$.xs"}), {"xs": [1, 2, 3]}, runs)
    assert final.output == [1, 2, 3] and runs.started == 1 and runs.children == 3


def test_redrive_after_stop_redrives_the_cancelled_run() -> None:
    sm = machine({"ItemsPath": "$.xs"})
    decision, run = start(sm, {"xs": [1]})
    stopped = decide(sm, decision.state, Stop(), 1001.0)
    redriven = decide(sm, stopped.state, Redrive(), 2000.0)
    (again,) = [c for c in redriven.commands if isinstance(c, StartMapRun)]
    assert again.run_id == run.run_id and again.spec["redrive"] is True
    stale = decide(sm, stopped.state, MapRunFinished(run.run_id, "SUCCEEDED", [1]), 2001.0)
    assert stale.events == []  # the stopped execution takes no report
    done = decide(sm, redriven.state, MapRunFinished(run.run_id, "SUCCEEDED", [1]), 2001.0)
    assert done.state.status == "SUCCEEDED"


def test_a_caught_failure_then_a_later_map_starts_a_new_run() -> None:
    sm = parse(
        {
            "StartAt": "M",
            "States": {
                "M": {
                    "Type": "Map",
                    "ItemProcessor": PROCESSOR,
                    "ItemsPath": "$.xs",
                    "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": "N"}],
                    "Next": "N",
                },
                "N": {"Type": "Map", "ItemProcessor": PROCESSOR, "ItemsPath": "$.xs", "End": True},
            },
        }
    )
    decision, run = start(sm, {"xs": [1]})
    caught = decide(sm, decision.state, MapRunFinished(run.run_id, "FAILED", error="E"), 1001.0)
    (second,) = [c for c in caught.commands if isinstance(c, StartMapRun)]
    assert second.run_id != run.run_id and "redrive" not in second.spec
    assert types(caught)[-2:] == ["MapStateStarted", "MapRunStarted"]


@pytest.mark.parametrize(
    ("fields", "input", "error", "cause"),
    [
        (
            {"ItemReader": READER},
            {"Key": "k"},
            "States.Runtime",
            "could not be found in the input",
        ),
        (
            {"ItemsPath": "$.xs", "ItemBatcher": {"MaxItemsPerBatchPath": "$.per"}},
            {"xs": [1], "per": -2},
            "States.Runtime",
            "MaxItemsPerBatch cannot be negative.",
        ),
        (
            {"ItemsPath": "$.xs", "ItemBatcher": {"MaxInputBytesPerBatchPath": "$.nope"}},
            {"xs": [1]},
            "States.Runtime",
            "Invalid path '$.nope'",
        ),
        (
            {
                "ItemsPath": "$.xs",
                "ItemBatcher": {"MaxItemsPerBatch": 1, "BatchInput": {"a.$": "$.b"}},
            },
            {"xs": [1]},
            "States.Runtime",
            "could not be found in the input",
        ),
        (
            {
                "ItemsPath": "$.xs",
                "ResultWriter": {
                    "Resource": "arn:aws:states:::s3:putObject",
                    "Parameters": {"Bucket.$": "$.o"},
                },
            },
            {"xs": [1]},
            "States.Runtime",
            "could not be found in the input",
        ),
        (
            {"ItemsPath": "$.xs", "ToleratedFailureCountPath": "$.t"},
            {"xs": [1], "t": -1},
            "States.Runtime",
            "ToleratedFailureCount cannot be negative.",
        ),
    ],
)
def test_errors_before_the_run_fail_the_state_without_a_run(
    fields: dict[str, Any], input: Any, error: str, cause: str
) -> None:
    state = new_execution(name="e1", input=input, now=1.0)
    decision = decide(machine(fields), state, Start(), 1.0)
    assert not [c for c in decision.commands if isinstance(c, StartMapRun)]
    assert "MapRunStarted" not in types(decision)
    assert decision.state.error == error
    assert cause in (decision.state.cause or ""), decision.state.cause


def test_jsonata_items_that_are_not_an_array_are_an_evaluation_error() -> None:
    sm = parse(
        {
            "QueryLanguage": "JSONata",
            "StartAt": "M",
            "States": {
                "M": {
                    "Type": "Map",
                    "Items": "{% $states.input.x %}",
                    "ItemProcessor": PROCESSOR,
                    "End": True,
                }
            },
        }
    )
    decision = decide(sm, new_execution(name="e", input={"x": 3}, now=1.0), Start(), 1.0)
    assert "EvaluationFailed" in types(decision)
    assert decision.state.error == "States.QueryEvaluationError"
    assert "Map state input must be an array but was: 3" in (decision.state.cause or "")


def test_jsonata_max_items_that_is_not_a_number_is_an_evaluation_error() -> None:
    sm = parse(
        {
            "QueryLanguage": "JSONata",
            "StartAt": "M",
            "States": {
                "M": {
                    "Type": "Map",
                    "ItemReader": {
                        "Resource": "arn:aws:states:::s3:getObject",
                        "ReaderConfig": {"InputType": "JSON", "MaxItems": "{% 'many' %}"},
                        "Arguments": {"Bucket": "b", "Key": "k"},
                    },
                    "ItemProcessor": PROCESSOR,
                    "End": True,
                }
            },
        }
    )
    decision = decide(sm, new_execution(name="e", input={}, now=1.0), Start(), 1.0)
    assert decision.state.error == "States.QueryEvaluationError"
    assert 'The MaxItems field refers to value "many"' in (decision.state.cause or "")
    assert "EvaluationFailed" in types(decision)


def test_a_late_end_of_the_run_before_the_redrive_is_ignored() -> None:
    """Hostile review: a redrive of the parent runs the same map run (same id) again.

    The end of its earlier attempt, delivered again after the redrive (an outbox the
    run had not cleared is re-sent before the redrive's start is applied; an SQS
    duplicate), failed the Map at once while the redriven run was still running. The
    run stamps its end with the parent's redrive count it runs for.
    """
    sm = machine({"ItemsPath": "$.xs"})
    decision, run = start(sm, {"xs": [1, 2]})
    old = MapRunFinished(run.run_id, "FAILED", error="E", parent_redrive=0)
    failed = decide(sm, decision.state, old, 1001.0)
    assert failed.state.status == "FAILED"
    redriven = decide(sm, failed.state, Redrive(), 2000.0)
    late = decide(sm, redriven.state, old, 2000.5)
    assert late.state.status == "RUNNING" and not late.events
    new = MapRunFinished(run.run_id, "SUCCEEDED", [1, 2], parent_redrive=1)
    done = decide(sm, late.state, new, 2001.0)
    assert done.state.status == "SUCCEEDED" and done.state.output == [1, 2]
