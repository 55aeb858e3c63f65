"""An in-memory execution's history is decoded when it is first read, once, as a snapshot."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Iterator
from dataclasses import FrozenInstanceError
from typing import Any

import pytest
from stepflow.runtime import memory
from stepflow.testing import ExecutionResult, WorkflowEnvironment, execute

from bench.throughput import counter_loop

CALLBACK = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts the in-memory log's history decodes (one per page read or result read)."""
    calls: list[int] = []
    thawed = memory._thawed

    def counted(*args: Any) -> list[dict[str, Any]]:
        calls.append(1)
        return thawed(*args)

    monkeypatch.setattr(memory, "_thawed", counted)
    yield calls


def test_execute_decodes_the_history_only_when_it_is_read(decodes: list[int]) -> None:
    result = execute(counter_loop(5), {"i": 0})
    assert (result.status, result.result, result.error, result.cause) == (
        "SUCCEEDED",
        {"i": 5, "label": "iteration 4", "mark": {"marked": True}},
        None,
        None,
    )
    assert decodes == []
    assert len(result.history) == 2 * (3 * 5 + 2) + 2
    assert decodes == [1]
    assert result.states_entered()[:3] == ["Check", "Increment", "Mark"]
    assert result.state("Increment").output == {"i": 5, "label": "iteration 4"}
    assert result.to_dict()["history"] is result.history
    assert decodes == [1]  # read once, then kept


def test_the_lazy_history_is_the_eager_one_and_a_snapshot() -> None:
    definition = {
        "StartAt": "Ask",
        "States": {
            "Ask": {
                "Type": "Task",
                "Resource": CALLBACK,
                "Parameters": {"QueueUrl": "q", "MessageBody": {"token.$": "$$.Task.Token"}},
                "End": True,
            }
        },
    }
    env = WorkflowEnvironment(start_time=1_700_000_000.0)
    arn = env.start(definition, {"a": 1})
    env.run(arn)
    waiting = env.result(arn)
    eager = env.history(arn)
    [task] = env.open_tasks()
    env.complete(task.token, {"ok": True})
    assert waiting.status == "RUNNING"
    assert waiting.history == eager  # what was committed when the result was taken
    done = env.result(arn)
    assert done.history == env.history(arn)
    assert len(done.history) > len(eager)
    assert done.history[: len(eager)] == eager


def test_a_lazy_result_equals_an_eager_one_and_stays_frozen() -> None:
    lazy = execute(counter_loop(2), {"i": 0})
    eager = ExecutionResult(lazy.status, lazy.output, history=list(lazy.history))
    assert lazy == eager
    assert repr(lazy) == repr(eager)
    assert ExecutionResult("FAILED") != eager
    with pytest.raises(FrozenInstanceError):
        lazy.status = "FAILED"  # type: ignore[misc]
    with pytest.raises(TypeError):
        ExecutionResult("SUCCEEDED", history=[], read_history=list)
    assert copy.copy(lazy) == lazy
    for copied in (copy.deepcopy(lazy), pickle.loads(pickle.dumps(lazy))):
        assert copied == lazy and copied.history is not lazy.history
