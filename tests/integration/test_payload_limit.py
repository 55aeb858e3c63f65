"""Payload size inside executions: ``Limits.max_payload_bytes`` (AWS: 256 KiB).

Past it, a state's output or a task's result fails the state with
``States.DataLimitExceeded``, which ``States.ALL`` neither retries nor catches
(naming it does), as on AWS. Raising the limit relies on the S3 payload offload.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from stepflow.limits import KIB, MIB, Limits
from stepflow.testing import open_environment

BACKENDS = ["memory", "moto"]
SMALL = Limits(max_payload_bytes=1000)
FN = "arn:aws:lambda:us-east-1:123456789012:function:"

CALLS: dict[str, int] = {}


def _big(payload: Any) -> Any:
    CALLS["big"] = CALLS.get("big", 0) + 1
    return {"blob": "x" * 2000}


def _item(payload: Any) -> Any:
    return "y" * 300


HANDLERS = {"big": _big, "item": _item}


def _task(catch: list[str]) -> dict[str, Any]:
    return {
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": f"{FN}big",
                "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 3}],
                "Catch": [{"ErrorEquals": catch, "ResultPath": "$.error", "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Pass", "End": True},
        },
    }


def _run(backend: str, definition: dict[str, Any], value: Any, **options: Any) -> Any:
    with open_environment(backend, handlers=HANDLERS, **options) as env:
        arn = env.start(env.register(definition), value)
        env.run(arn)
        return env.result(arn)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_state_output_past_the_limit_fails_with_data_limit_exceeded(backend: str) -> None:
    definition = {
        "StartAt": "P",
        "States": {"P": {"Type": "Pass", "Result": "z" * 2000, "End": True}},
    }
    result = _run(backend, definition, {}, limits=SMALL)
    assert (result.status, result.error) == ("FAILED", "States.DataLimitExceeded")
    assert "max_payload_bytes" in result.cause and "2002 bytes" in result.cause


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_task_result_past_the_limit_is_neither_retried_nor_caught_by_states_all(
    backend: str,
) -> None:
    CALLS.clear()
    result = _run(backend, _task(["States.ALL"]), {}, limits=SMALL)
    assert (result.status, result.error) == ("FAILED", "States.DataLimitExceeded")
    assert CALLS == {"big": 1}  # States.ALL in Retry does not retry it


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_task_result_past_the_limit_is_caught_by_name(backend: str) -> None:
    CALLS.clear()
    result = _run(backend, _task(["States.DataLimitExceeded"]), {}, limits=SMALL)
    assert result.status == "SUCCEEDED"
    assert json.loads(result.output)["error"]["Error"] == "States.DataLimitExceeded"
    assert CALLS == {"big": 1}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("child_limit", [None, 2], ids=["inline", "children"])
def test_map_results_merged_past_the_limit_fail_the_map(
    backend: str, child_limit: int | None
) -> None:
    # GIVEN a Map of 5 items, each result 302 bytes: alone within 1000 bytes, merged not
    definition = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemProcessor": {
                    "StartAt": "T",
                    "States": {"T": {"Type": "Task", "Resource": f"{FN}item", "End": True}},
                },
                "End": True,
            }
        },
    }
    result = _run(backend, definition, [1, 2, 3, 4, 5], limits=SMALL, child_limit=child_limit)
    assert (result.status, result.error) == ("FAILED", "States.DataLimitExceeded"), result
    assert "state's output" in result.cause


def test_parallel_outputs_past_the_limit_fail_the_parallel() -> None:
    branch = {"StartAt": "B", "States": {"B": {"Type": "Pass", "Result": "w" * 600, "End": True}}}
    definition = {
        "StartAt": "Par",
        "States": {"Par": {"Type": "Parallel", "Branches": [branch, branch], "End": True}},
    }
    result = _run("memory", definition, {}, limits=SMALL)
    assert (result.status, result.error) == ("FAILED", "States.DataLimitExceeded")


def test_the_default_limit_is_aws_256_kib() -> None:
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "P",
        "States": {
            "P": {"Type": "Pass", "Output": "{% $pad('', $states.input.n, 'a') %}", "End": True},
        },
    }
    under = _run("memory", definition, {"n": 256 * KIB - 2})  # a JSON string: 2 quotes
    over = _run("memory", definition, {"n": 256 * KIB - 1})
    assert under.status == "SUCCEEDED"
    assert (over.status, over.error) == ("FAILED", "States.DataLimitExceeded")


def test_a_1_mib_output_with_the_limit_raised_goes_through_the_s3_offload() -> None:
    # GIVEN the DynamoDB log on moto with a payload bucket, and the limit raised to 2 MiB
    # (and the expression budget raised: building 60,000 numbers took over the default 1 s
    # on a loaded CI machine; this test is about the offload, not the budget)
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "P",
        "States": {
            "P": {
                "Type": "Pass",
                "Output": "{% $map([1..60000], function($v) {$random()}) %}",
                "Next": "Q",
            },
            "Q": {"Type": "Pass", "End": True},
        },
    }
    result = _run(
        "moto",
        definition,
        {},
        limits=Limits(max_payload_bytes=2 * MIB, expression_budget_seconds=30.0),
        payload_bucket="stepflow-payloads",
    )
    # THEN a state output of about 1 MiB passes from state to state and ends the execution
    assert result.status == "SUCCEEDED", result.cause
    assert len(json.loads(result.output)) == 60000
    assert len(result.output) > MIB


class _Huge(Exception):
    """A task failure whose message is far over AWS's cause length."""


def _fail_huge(payload: Any) -> Any:
    CALLS["fail_huge"] = CALLS.get("fail_huge", 0) + 1
    raise _Huge("m" * 100_000)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fail_state_and_task_error_and_cause_are_cut_to_the_limits(backend: str) -> None:
    # review: a Fail state's Error/Cause (JSONata or ErrorPath/CausePath) and a task's
    # failure went into the history at any size (a 300 KB error, a 2 MB cause)
    jsonata_fail = {
        "QueryLanguage": "JSONata",
        "StartAt": "F",
        "States": {
            "F": {
                "Type": "Fail",
                "Error": "{% $pad('', 300000, 'e') %}",
                "Cause": "{% $pad('', 2000000, 'c') %}",
            }
        },
    }
    path_fail = {
        "StartAt": "F",
        "States": {"F": {"Type": "Fail", "ErrorPath": "$.x", "CausePath": "$.x"}},
    }
    task = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN + "huge", "End": True}}}
    CALLS.clear()
    with open_environment(backend, handlers={"huge": _fail_huge}) as env:
        runs = [
            env.start(env.register(jsonata_fail, "J"), {}),
            env.start(env.register(path_fail, "P"), {"x": "z" * 100_000}),
            env.start(env.register(task, "T"), {}),
        ]
        env.run()
        for arn in runs:
            result = env.result(arn)
            assert result.status == "FAILED", result
            assert result.error is not None and 0 < len(result.error) <= 256, arn
            assert result.cause is not None and 0 < len(result.cause) <= 32_768, arn
            failed = [e for e in env.history(arn) if e["type"] == "ExecutionFailed"]
            assert len(failed) == 1
            assert failed[0]["executionFailedEventDetails"]["cause"] == result.cause
        assert env.result(runs[0]).error == "e" * 256
        assert env.result(runs[0]).cause == "c" * 32_768
        assert CALLS == {"fail_huge": 1}
