"""Edge cases found in review: failures blamed on the right state, bounded numbers and caches."""

from __future__ import annotations

from typing import Any

from stepflow.asl import parse
from stepflow.cli import main
from stepflow.engine import RunTask, Start, TaskSucceeded, dataflow, decide, new_execution
from stepflow.testing import execute

FN = "arn:aws:lambda:us-east-1:123456789012:function:"


class Boom(Exception):
    """A task failure."""


def _boom(_: Any) -> Any:
    raise Boom("no")


def test_an_item_selector_failure_on_a_later_item_is_blamed_on_the_map() -> None:
    definition = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "MaxConcurrency": 1,
                "ItemSelector": {"v.$": "States.StringToJson($$.Map.Item.Value)"},
                "ItemProcessor": {
                    "StartAt": "P",
                    "States": {"P": {"Type": "Pass", "End": True}},
                },
                "End": True,
            },
        },
    }
    result = execute(definition, ["1", "not json"])
    # Intrinsic failures are States.Runtime (never caught); what matters is that
    # the Map state is blamed, not the iteration that happened to finish last.
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "the state 'M'" in (result.cause or "")
    assert [e["type"] for e in result.history][-2:] == ["MapIterationSucceeded", "ExecutionFailed"]


def _assign_too_much(catch: list[str]) -> dict[str, Any]:
    return {
        "StartAt": "P",
        "States": {
            "P": {
                "Type": "Task",
                "Resource": FN + "big",
                "Assign": {"big.$": "$"},
                "Catch": [{"ErrorEquals": catch, "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Pass", "End": True},
        },
    }


def test_data_limit_exceeded_is_caught_only_by_name() -> None:
    handlers = {"big": lambda _: "x" * 300_000}
    wildcard = execute(_assign_too_much(["States.ALL"]), {}, handlers=handlers)
    assert (wildcard.status, wildcard.error) == ("FAILED", "States.DataLimitExceeded")
    task_failed = execute(_assign_too_much(["States.TaskFailed"]), {}, handlers=handlers)
    assert task_failed.status == "FAILED"
    named = execute(_assign_too_much(["States.DataLimitExceeded"]), {}, handlers=handlers)
    assert named.status == "SUCCEEDED"


def _tolerant_map(count: int, percentage: int) -> dict[str, Any]:
    return {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ToleratedFailureCount": count,
                "ToleratedFailurePercentage": percentage,
                "ItemProcessor": {
                    "StartAt": "T",
                    "States": {
                        "T": {
                            "Type": "Choice",
                            "Choices": [{"Variable": "$", "NumericEquals": 0, "Next": "F"}],
                            "Default": "S",
                        },
                        "F": {"Type": "Fail", "Error": "Bad"},
                        "S": {"Type": "Succeed"},
                    },
                },
                "End": True,
            }
        },
    }


def test_exceeding_either_tolerance_threshold_fails_the_map() -> None:
    items = [0, 0, 1, 1]  # two failures of four: 50 %
    assert execute(_tolerant_map(5, 25), items).status == "FAILED"  # count ok, percentage not
    assert execute(_tolerant_map(1, 100), items).status == "FAILED"  # percentage ok, count not
    assert execute(_tolerant_map(2, 50), items).status == "SUCCEEDED"


def test_a_finished_task_leaves_no_timers_behind() -> None:
    machine = parse(
        {
            "StartAt": "T",
            "States": {
                "T": {
                    "Type": "Task",
                    "Resource": FN + "f",
                    "TimeoutSeconds": 30,
                    "HeartbeatSeconds": 10,
                    "Next": "W",
                },
                "W": {"Type": "Wait", "Seconds": 5, "End": True},
            },
        }
    )
    state = new_execution(name="e", input={}, now=0.0)
    first = decide(machine, state, Start(), 0.0)
    run = next(c for c in first.commands if isinstance(c, RunTask))
    assert len(first.state.timers) == 2
    second = decide(machine, first.state, TaskSucceeded(run.task_id, {}), 1.0)
    assert [kind for _, kind in second.state.timers.values()] == ["wait"]


def test_huge_durations_fail_cleanly_and_huge_backoff_does_not_overflow() -> None:
    wait = {
        "StartAt": "W",
        "States": {"W": {"Type": "Wait", "SecondsPath": "$.s", "End": True}},
    }
    for seconds in (10**12, 10**400, 1e300):
        result = execute(wait, {"s": seconds})
        assert (result.status, result.error) == ("FAILED", "States.Runtime")
    retry = {
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": FN + "f",
                "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 4, "BackoffRate": 1e300}],
                "End": True,
            }
        },
    }
    result = execute(retry, {}, handlers={"f": _boom})
    assert (result.status, result.error) == ("FAILED", "Boom")


def test_a_choice_rule_inherits_the_state_level_output_and_assign() -> None:
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "C",
        "States": {
            "C": {
                "Type": "Choice",
                "Output": {"from": "state"},
                "Assign": {"seen": True, "who": "state"},
                "Choices": [
                    {
                        "Condition": "{% $states.input.n = 1 %}",
                        "Next": "D",
                        "Assign": {"who": "rule"},
                    },
                    {"Condition": "{% $states.input.n = 2 %}", "Next": "D", "Output": "rule"},
                ],
                "Default": "D",
            },
            "D": {
                "Type": "Pass",
                "Output": {"in": "{% $states.input %}", "seen": "{% $seen %}", "who": "{% $who %}"},
                "End": True,
            },
        },
    }
    assert execute(definition, {"n": 1}).result == {
        "in": {"from": "state"},
        "seen": True,
        "who": "rule",
    }
    assert execute(definition, {"n": 2}).result == {"in": "rule", "seen": True, "who": "state"}
    assert execute(definition, {"n": 3}).result == {
        "in": {"from": "state"},
        "seen": True,
        "who": "state",
    }


def test_a_wait_records_its_assignments_when_it_exits() -> None:
    definition = {
        "StartAt": "W",
        "States": {
            "W": {"Type": "Wait", "Seconds": 5, "Assign": {"x": 1}, "Next": "P"},
            "P": {"Type": "Pass", "Parameters": {"x.$": "$x"}, "End": True},
        },
    }
    result = execute(definition, {})
    exited = next(e for e in result.history if e["type"] == "WaitStateExited")
    assert exited["stateExitedEventDetails"]["assignedVariables"] == {"x": "1"}
    assert result.result == {"x": 1}


def test_template_caches_stay_bounded() -> None:
    for i in range(dataflow._CACHE_ENTRIES + 50):
        dataflow.jsonata({"v": "{% 1 %}", "i": i}, "Output")
    assert len(dataflow._jsonata_cache) <= dataflow._CACHE_ENTRIES


def test_cli_reports_unreadable_json_without_a_traceback(tmp_path: Any, capsys: Any) -> None:
    machine = tmp_path / "m.json"
    machine.write_text('{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}')
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    long_number = tmp_path / "n.json"
    long_number.write_text("1" * 5000)
    for bad in (deep, long_number):
        assert main(["run", str(machine), "--input", f"@{bad}"]) == 2
        err = capsys.readouterr().err
        assert "cannot be read as JSON" in err and "Traceback" not in err
