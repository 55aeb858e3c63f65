"""Node statuses from real histories (``stepflow.testing``) and from hostile ones."""

from __future__ import annotations

from typing import Any

from stepflow.graph import STATUSES, node_statuses
from stepflow.testing import WorkflowEnvironment, execute

from tests.unit.graph.machines import CALLBACK, LAMBDA, Boom, fulfil_machine, pack, task

HANDLERS = {LAMBDA + "charge": lambda _: "charged", LAMBDA + "pack": pack}


def callback(name: str, **fields: Any) -> dict[str, Any]:
    """A callback Task no handler answers: it waits until stopped or timed out."""
    payload = {"FunctionName": "wait", "Payload": {"token.$": "$$.Task.Token"}}
    return {"Type": "Task", "Resource": CALLBACK, "Parameters": payload, **fields}


def test_a_caught_error_in_a_nested_map() -> None:
    machine = fulfil_machine()
    result = execute(machine, {"items": ["ok", "bad"]}, handlers=HANDLERS)
    assert result.succeeded
    assert node_statuses(machine, result.history) == {
        "Fulfil": "caught",
        "Charge": "succeeded",
        "PackAll": "failed",
        "Pack": "failed",  # the worst of its two iterations
        "Recover": "succeeded",
        "Route": "succeeded",
        "Big": "not-run",
        "Wrap": "not-run",
        "Done": "succeeded",
    }


def test_a_clean_run_and_a_choice_rule() -> None:
    machine = fulfil_machine()
    result = execute(machine, {"items": ["a", "b"], "n": 9}, handlers=HANDLERS)
    statuses = node_statuses(machine, result.history)
    assert result.status == "FAILED"
    assert statuses == {
        "Fulfil": "succeeded",
        "Charge": "succeeded",
        "PackAll": "succeeded",
        "Pack": "succeeded",
        "Recover": "not-run",
        "Route": "succeeded",
        "Big": "failed",  # a Fail state
        "Wrap": "not-run",
        "Done": "not-run",
    }


def test_a_failed_branch_fails_the_parallel_and_aborts_its_sibling() -> None:
    machine = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "Breaks", "States": {"Breaks": task("breaks", End=True)}},
                    {"StartAt": "Waits", "States": {"Waits": callback("Waits", End=True)}},
                ],
                "Next": "After",
            },
            "After": {"Type": "Succeed"},
        },
    }

    def breaks(_: Any) -> Any:
        raise Boom("broken")

    result = execute(machine, {}, handlers={LAMBDA + "breaks": breaks})
    assert (result.status, result.error) == ("FAILED", "Boom")
    assert node_statuses(machine, result.history) == {
        "Both": "failed",
        "Breaks": "failed",
        "Waits": "aborted",
        "After": "not-run",
    }


def test_a_retried_failure_that_then_succeeds_is_succeeded() -> None:
    machine = {
        "StartAt": "Flaky",
        "States": {
            "Flaky": task("flaky", End=True, Retry=[{"ErrorEquals": ["Boom"], "MaxAttempts": 2}])
        },
    }
    calls: list[Any] = []

    def flaky(value: Any) -> Any:
        calls.append(value)
        if len(calls) == 1:
            raise Boom("once")
        return value

    result = execute(machine, {}, handlers={LAMBDA + "flaky": flaky})
    assert (result.status, len(calls)) == ("SUCCEEDED", 2)
    assert node_statuses(machine, result.history) == {"Flaky": "succeeded"}


def test_an_aborted_run() -> None:
    machine = {
        "StartAt": "First",
        "States": {
            "First": {"Type": "Pass", "Next": "Waits"},
            "Waits": callback("Waits", End=True),
        },
    }
    env = WorkflowEnvironment()
    arn = env.start(machine, {})
    env.run(arn)
    running = node_statuses(machine, env.history(arn))
    env.stop(arn, error="Cancelled")
    result = env.result(arn)
    assert result.status == "ABORTED"
    assert running == {"First": "succeeded", "Waits": "running"}
    assert node_statuses(machine, result.history) == {"First": "succeeded", "Waits": "aborted"}


def test_a_timed_out_task_caught_and_not() -> None:
    timing_out = callback("Waits", TimeoutSeconds=5, End=True)
    machine = {"StartAt": "Waits", "States": {"Waits": timing_out}}
    result = execute(machine, {})
    assert (result.status, result.error) == ("FAILED", "States.Timeout")
    assert node_statuses(machine, result.history) == {"Waits": "timed-out"}

    catching = {
        **timing_out,
        "Catch": [{"ErrorEquals": ["States.Timeout"], "Next": "Late"}],
    }
    caught_machine = {
        "StartAt": "Waits",
        "States": {"Waits": catching, "Late": {"Type": "Succeed"}},
    }
    caught = execute(caught_machine, {})
    assert caught.succeeded
    assert node_statuses(caught_machine, caught.history) == {"Waits": "caught", "Late": "succeeded"}


def test_an_execution_timeout_times_out_the_running_state() -> None:
    machine = {
        "TimeoutSeconds": 10,
        "StartAt": "Waits",
        "States": {"Waits": callback("Waits", End=True)},
    }
    result = execute(machine, {})
    assert result.status == "TIMED_OUT"
    assert node_statuses(machine, result.history) == {"Waits": "timed-out"}


def test_a_choice_without_a_match_fails() -> None:
    machine = {
        "StartAt": "Route",
        "States": {
            "Route": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "One"}],
            },
            "One": {"Type": "Succeed"},
        },
    }
    result = execute(machine, {"n": 2})
    assert result.error == "States.NoChoiceMatched"
    assert node_statuses(machine, result.history) == {"Route": "failed", "One": "not-run"}


def test_every_prefix_of_a_history_gives_valid_statuses() -> None:
    machine = fulfil_machine()
    history = execute(machine, {"items": ["ok", "bad"]}, handlers=HANDLERS).history
    for end in range(len(history) + 1):
        statuses = node_statuses(machine, history[:end])
        assert set(statuses.values()) <= set(STATUSES)
    assert node_statuses(machine, history[:4])["Fulfil"] == "running"
    # live: once the Parallel is caught, nothing inside it is still running
    caught = next(i for i, e in enumerate(history) if e["type"] == "ParallelStateExited")
    assert node_statuses(machine, history[: caught + 1]) == {
        "Fulfil": "caught",
        "Charge": "succeeded",
        "PackAll": "failed",
        "Pack": "failed",
        "Recover": "not-run",
        "Route": "not-run",
        "Big": "not-run",
        "Wrap": "not-run",
        "Done": "not-run",
    }


def test_hostile_events_are_ignored() -> None:
    machine = fulfil_machine()
    hostile: list[Any] = [
        None,
        "event",
        {"type": 3, "id": "x"},
        {"type": "TaskStateEntered", "id": 1},
        {"type": "TaskStateEntered", "id": 2, "previousEventId": 2, "stateEnteredEventDetails": []},
        {"type": "TaskStateExited", "id": 3, "previousEventId": 99},
        {"type": "ParallelStateFailed", "id": 4, "previousEventId": 4},
        {"type": "ExecutionFailed", "id": 5, "previousEventId": 1},
    ]
    chain = [
        {
            "type": "PassStateEntered",
            "id": i + 10,
            "previousEventId": i + 9,
            "stateEnteredEventDetails": {"name": "Recover"},
        }
        for i in range(20_000)
    ]
    statuses = node_statuses(machine, hostile + chain)
    assert statuses["Recover"] == "running" and statuses["Fulfil"] == "not-run"


def test_a_redriven_state_shows_its_latest_run() -> None:
    fail = [True]

    def flaky(item: Any) -> Any:
        if fail[0]:
            raise Boom("not yet")
        return item

    machine = {
        "StartAt": "First",
        "States": {
            "First": {"Type": "Pass", "Next": "Each"},
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": {"StartAt": "Flaky", "States": {"Flaky": task("flaky", End=True)}},
                "Next": "Done",
            },
            "Done": {"Type": "Succeed"},
        },
    }
    env = WorkflowEnvironment(handlers={LAMBDA + "flaky": flaky})
    arn = env.start(machine, {"items": [1, 2]})
    env.run(arn)
    assert node_statuses(machine, env.history(arn)) == {
        "First": "succeeded",
        "Each": "failed",
        "Flaky": "failed",
        "Done": "not-run",
    }
    fail[0] = False
    env.stepper.redrive_execution(arn)
    env.run(arn)
    history = env.history(arn)
    assert [e["type"] for e in history].count("ExecutionRedriven") == 1
    assert node_statuses(machine, history) == {
        "First": "succeeded",  # not run again: its first run counts
        "Each": "succeeded",
        "Flaky": "succeeded",
        "Done": "succeeded",
    }


def test_many_open_instances_of_one_name_stay_linear() -> None:
    entered = [
        {
            "type": "PassStateEntered",
            "id": i + 1,
            "previousEventId": 0,
            "stateEnteredEventDetails": {"name": "Recover"},
        }
        for i in range(30_000)
    ]
    exited = [
        {
            "type": "PassStateExited",
            "id": 40_000 + i,
            "previousEventId": 0,
            "stateExitedEventDetails": {"name": "Recover"},
        }
        for i in range(29_999)
    ]
    ends = [
        {"type": "ExecutionFailed", "id": 80_000 + i, "previousEventId": 0} for i in range(30_000)
    ]
    statuses = node_statuses(fulfil_machine(), entered + exited + ends)
    assert statuses["Recover"] == "aborted"


def _fails_once() -> Any:
    calls: list[int] = []

    def flaky(payload: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise Boom("first attempt")
        return "ok"

    return flaky


RETRY = [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 2}]


def test_a_retried_parallel_shows_its_latest_attempt_only() -> None:
    wait_then_later = {
        "StartAt": "Wait",
        "States": {
            "Wait": {"Type": "Wait", "Seconds": 5, "Next": "Later"},
            "Later": {"Type": "Pass", "End": True},
        },
    }
    machine = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Retry": RETRY,
                "Branches": [
                    {"StartAt": "T", "States": {"T": task("flaky", End=True)}},
                    wait_then_later,
                ],
                "End": True,
            }
        },
    }
    result = execute(machine, {}, handlers={LAMBDA + "flaky": _fails_once()})
    assert result.succeeded
    kinds = [e["type"] for e in result.history]
    assert kinds.count("ParallelStateStarted") == 2 and kinds.count("LambdaFunctionFailed") == 1
    assert node_statuses(machine, result.history) == dict.fromkeys(
        ["Both", "T", "Wait", "Later"], "succeeded"
    )
    # mid-run: once the second attempt starts, the first one's states are not shown
    restart = [i for i, kind in enumerate(kinds) if kind == "ParallelStateStarted"][1]
    assert node_statuses(machine, result.history[: restart + 1]) == {
        "Both": "running", "T": "not-run", "Wait": "not-run", "Later": "not-run"
    }  # fmt: skip
    entered = node_statuses(machine, result.history[: restart + 4])
    assert entered["T"] == "running" and entered["Later"] == "not-run"


def test_a_retried_map_shows_its_latest_attempt_only() -> None:
    machine = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "Retry": RETRY,
                "ItemsPath": "$.items",
                "ItemProcessor": {"StartAt": "T", "States": {"T": task("flaky", End=True)}},
                "End": True,
            }
        },
    }
    result = execute(machine, {"items": [1]}, handlers={LAMBDA + "flaky": _fails_once()})
    assert result.succeeded
    assert [e["type"] for e in result.history].count("MapStateStarted") == 2
    assert node_statuses(machine, result.history) == {"Each": "succeeded", "T": "succeeded"}


def test_a_parallel_retried_after_its_failed_event_starts_afresh() -> None:
    # AWS writes ParallelStateFailed before the retry's ParallelStateStarted
    kinds = [
        ("ExecutionStarted", None), ("ParallelStateEntered", "Both"),
        ("ParallelStateStarted", None), ("TaskStateEntered", "T"),
        ("LambdaFunctionFailed", None), ("ParallelStateFailed", None),
        ("ParallelStateStarted", None), ("TaskStateEntered", "T"), ("TaskStateExited", "T"),
        ("ParallelStateSucceeded", None), ("ParallelStateExited", "Both"),
        ("ExecutionSucceeded", None),
    ]  # fmt: skip
    history: list[dict[str, Any]] = []
    for number, (kind, name) in enumerate(kinds, start=1):
        event: dict[str, Any] = {"id": number, "type": kind, "previousEventId": number - 1}
        if name is not None:
            key = (
                "stateEnteredEventDetails"
                if kind.endswith("Entered")
                else "stateExitedEventDetails"
            )
            event[key] = {"name": name}
        history.append(event)
    machine = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [{"StartAt": "T", "States": {"T": task("t", End=True)}}],
                "End": True,
            }
        },
    }
    assert node_statuses(machine, history) == {"Both": "succeeded", "T": "succeeded"}
