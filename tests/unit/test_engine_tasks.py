"""Tasks, Retry, Catch, Parallel and Map through the in-memory driver."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stepflow.errors import StatesError
from stepflow.testing import execute

T0 = datetime(2025, 1, 1, tzinfo=UTC)
FN = "arn:aws:lambda:us-east-1:123456789012:function:"


class Flaky(Exception):
    """Raised by handlers that fail a given number of times."""


def flaky(times: int, result: Any = "ok") -> Any:
    calls = {"n": 0}

    def handler(_payload: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= times:
            raise Flaky(f"attempt {calls['n']}")
        return result

    handler.calls = calls  # type: ignore[attr-defined]
    return handler


def task(resource: str, **fields: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": resource, **fields}


def test_lambda_task_by_function_name_with_result_selector_and_path() -> None:
    definition = {
        "StartAt": "T",
        "States": {
            "T": task(
                FN + "double",
                Parameters={"n.$": "$.n"},
                ResultSelector={"value.$": "$.doubled"},
                ResultPath="$.out",
                End=True,
            )
        },
    }
    result = execute(definition, {"n": 21}, handlers={"double": lambda p: {"doubled": p["n"] * 2}})
    assert result.result == {"n": 21, "out": {"value": 42}}
    assert [e["type"] for e in result.history][1:6] == [
        "TaskStateEntered",
        "LambdaFunctionScheduled",
        "LambdaFunctionStarted",
        "LambdaFunctionSucceeded",
        "TaskStateExited",
    ]


def test_lambda_invoke_integration_wraps_the_payload() -> None:
    definition = {
        "StartAt": "T",
        "States": {
            "T": task(
                "arn:aws:states:::lambda:invoke",
                Parameters={"FunctionName": FN + "echo", "Payload.$": "$"},
                ResultSelector={"p.$": "$.Payload", "code.$": "$.StatusCode"},
                End=True,
            )
        },
    }
    result = execute(definition, {"a": 1}, handlers={"echo": lambda p: p})
    assert result.result == {"p": {"a": 1}, "code": 200}
    scheduled = next(e for e in result.history if e["type"] == "TaskScheduled")
    assert scheduled["taskScheduledEventDetails"]["resourceType"] == "lambda"
    assert scheduled["taskScheduledEventDetails"]["resource"] == "invoke"


def test_retry_backs_off_on_the_virtual_clock_then_succeeds() -> None:
    handler = flaky(2)
    definition = {
        "StartAt": "T",
        "States": {
            "T": task(
                FN + "f",
                Retry=[
                    {
                        "ErrorEquals": ["Flaky"],
                        "IntervalSeconds": 3,
                        "BackoffRate": 2,
                        "MaxAttempts": 5,
                    }
                ],
                End=True,
            )
        },
    }
    result = execute(definition, {}, handlers={"f": handler}, start_time=T0)
    assert result.result == "ok"
    starts = [
        e["timestamp"] - T0.timestamp()
        for e in result.history
        if e["type"] == "LambdaFunctionScheduled"
    ]
    assert starts == [0, 3, 9]


def test_retry_max_delay_caps_backoff_and_exhaustion_fails() -> None:
    definition = {
        "StartAt": "T",
        "States": {
            "T": task(
                FN + "f",
                Retry=[
                    {
                        "ErrorEquals": ["Flaky"],
                        "IntervalSeconds": 10,
                        "BackoffRate": 10,
                        "MaxAttempts": 3,
                        "MaxDelaySeconds": 50,
                    }
                ],
                End=True,
            )
        },
    }
    result = execute(definition, {}, handlers={"f": flaky(100)}, start_time=T0)
    assert (result.status, result.error, result.cause) == ("FAILED", "Flaky", "attempt 4")
    starts = [
        e["timestamp"] - T0.timestamp()
        for e in result.history
        if e["type"] == "LambdaFunctionScheduled"
    ]
    assert starts == [0, 10, 60, 110]


def test_full_jitter_is_seeded_and_bounded() -> None:
    definition = {
        "StartAt": "T",
        "States": {
            "T": task(
                FN + "f",
                Retry=[
                    {
                        "ErrorEquals": ["States.ALL"],
                        "IntervalSeconds": 100,
                        "MaxAttempts": 1,
                        "JitterStrategy": "FULL",
                    }
                ],
                End=True,
            )
        },
    }

    def delay(seed: int) -> float:
        history = execute(
            definition, {}, handlers={"f": flaky(1)}, start_time=T0, seed=seed
        ).history
        times = [e["timestamp"] for e in history if e["type"] == "LambdaFunctionScheduled"]
        return times[1] - times[0]

    assert delay(1) == delay(1)
    assert 0 <= delay(1) < 100
    assert len({delay(s) for s in range(5)}) > 1


def test_catch_places_error_output_and_continues() -> None:
    def boom(_: Any) -> Any:
        raise StatesError("Custom.Error", "it broke")

    definition = {
        "StartAt": "T",
        "States": {
            "T": task(
                FN + "boom",
                Catch=[
                    {"ErrorEquals": ["Other"], "Next": "Wrong"},
                    {"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": "Handled"},
                ],
                End=True,
            ),
            "Wrong": {"Type": "Fail"},
            "Handled": {"Type": "Pass", "End": True},
        },
    }
    result = execute(definition, {"x": 1}, handlers={"boom": boom})
    assert result.result == {"x": 1, "err": {"Error": "Custom.Error", "Cause": "it broke"}}
    assert "TaskStateExited" in [e["type"] for e in result.history]


def test_task_failed_matches_everything_but_timeout() -> None:
    definition = {
        "StartAt": "T",
        "States": {
            "T": task(
                FN + "f", Catch=[{"ErrorEquals": ["States.TaskFailed"], "Next": "C"}], End=True
            ),
            "C": {"Type": "Succeed"},
        },
    }
    assert execute(definition, {}, handlers={"f": flaky(1)}).status == "SUCCEEDED"


def test_missing_handler_fails_the_task_with_a_clear_cause() -> None:
    definition = {"StartAt": "T", "States": {"T": task(FN + "nobody", End=True)}}
    result = execute(definition, {})
    assert result.error == "States.TaskFailed"
    assert "No handler is registered" in (result.cause or "")


def test_parallel_collects_branch_outputs_in_order() -> None:
    definition = {
        "StartAt": "P",
        "States": {
            "P": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "A", "States": {"A": task(FN + "slow", End=True)}},
                    {"StartAt": "B", "States": {"B": {"Type": "Pass", "Result": "b", "End": True}}},
                ],
                "End": True,
            }
        },
    }
    result = execute(definition, {"v": 1}, handlers={"slow": lambda p: {"a": p["v"]}})
    assert result.result == [{"a": 1}, "b"]


def test_parallel_branch_failure_is_caught_and_other_branches_are_stopped() -> None:
    definition = {
        "StartAt": "P",
        "States": {
            "P": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}}},
                    {
                        "StartAt": "F",
                        "States": {"F": {"Type": "Fail", "Error": "Bad", "Cause": "c"}},
                    },
                ],
                "Catch": [{"ErrorEquals": ["Bad"], "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Pass", "End": True},
        },
    }
    result = execute(definition, {})
    assert result.result == {"Error": "Bad", "Cause": "c"}
    types = [e["type"] for e in result.history]
    assert "WaitStateExited" not in types
    assert types.index("ParallelStateFailed") < types.index("ParallelStateExited")


def test_map_with_item_selector_context_and_max_concurrency() -> None:
    seen: list[Any] = []

    def record(p: Any) -> Any:
        seen.append(p)
        return p["index"] * 10

    definition = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": 2,
                "ItemSelector": {
                    "index.$": "$$.Map.Item.Index",
                    "value.$": "$$.Map.Item.Value",
                    "k.$": "$.k",
                },
                "ItemProcessor": {"StartAt": "T", "States": {"T": task(FN + "rec", End=True)}},
                "ResultPath": "$.out",
                "End": True,
            }
        },
    }
    result = execute(definition, {"items": ["a", "b", "c"], "k": 1}, handlers={"rec": record})
    assert result.result == {"items": ["a", "b", "c"], "k": 1, "out": [0, 10, 20]}
    assert seen[0] == {"index": 0, "value": "a", "k": 1}
    started = [e for e in result.history if e["type"] == "MapIterationStarted"]
    assert [e["mapIterationStartedEventDetails"]["index"] for e in started] == [0, 1, 2]


def test_map_tolerated_failures() -> None:
    def odd_fails(p: Any) -> Any:
        if p % 2:
            raise Flaky("odd")
        return p

    def run(tolerated: int) -> Any:
        definition = {
            "StartAt": "M",
            "States": {
                "M": {
                    "Type": "Map",
                    "ToleratedFailureCount": tolerated,
                    "ItemProcessor": {"StartAt": "T", "States": {"T": task(FN + "odd", End=True)}},
                    "End": True,
                }
            },
        }
        return execute(definition, [0, 1, 2, 3], handlers={"odd": odd_fails})

    ok = run(2)
    assert ok.status == "SUCCEEDED"
    assert ok.result[0] == 0 and ok.result[1]["Error"] == "Flaky"
    failed = run(1)
    assert (failed.status, failed.error) == ("FAILED", "States.ExceedToleratedFailureThreshold")


def test_map_over_a_non_array_fails() -> None:
    definition = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.v",
                "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
                "End": True,
            }
        },
    }
    result = execute(definition, {"v": 3})
    assert result.status == "FAILED"
