"""Parity: the DynamoDB log on moto (every message through the stepper Lambda) gives the
same outcome as the in-memory ports on every dev conformance case, Task and callback
cases included (skipped when ../shared/conformance is absent).

One test over all cases, each backend in one environment (one moto set-up): the
moto run takes about half a minute. Task tokens (signed with a random per-execution
key) and ``States.UUID`` values are random by design and compared as placeholders.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conformance.runner import run_all
from tests.conformance.test_conformance import ALL, CASES

pytestmark = pytest.mark.conformance

RANDOM = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # States.UUID
    r"|[A-Za-z0-9_-]+\.t\d+(?:\.[a-z0-9.]+)?\.[0-9a-f]{32,64}"  # a task token
)


def _outcome(report: dict[str, Any]) -> tuple[Any, ...]:
    output = report["output"]
    return (
        report["status"],
        None if output is None else RANDOM.sub("<random>", output),
        report["error"],
        None if report["cause"] is None else RANDOM.sub("<random>", report["cause"]),
        [event["type"] for event in report["history"]],
    )


@pytest.mark.skipif(not ALL, reason=f"{CASES} is absent (as in a user's clone)")
def test_moto_matches_memory_on_every_dev_case() -> None:
    """Status, output, error, cause and history event types agree case by case."""
    memory = run_all(ALL, durable="memory")
    moto = run_all(ALL, durable=True)
    assert len(memory) == len(moto) == len(ALL)
    differ = [
        f"{case['id']}: memory {_outcome(a)[:4]} != moto {_outcome(b)[:4]}"
        + ("" if _outcome(a)[4] == _outcome(b)[4] else " (history types differ)")
        for case, a, b in zip(ALL, memory, moto, strict=True)
        if _outcome(a) != _outcome(b)
    ]
    assert not differ, "\n".join(differ)
    # The callback cases ran to the end: each started task was answered (SendTaskSuccess).
    callbacks = [r for c, r in zip(ALL, memory, strict=True) if _is_callback(c)]
    answered = [r for r in callbacks if _types(r).count("TaskStarted") > 0]
    assert len(answered) >= 5
    for report in answered:
        types = _types(report)
        assert report["status"] != "RUNNING"
        assert types.count("TaskStarted") == types.count("TaskSucceeded") + types.count(
            "TaskFailed"
        )


def _types(report: dict[str, Any]) -> list[str]:
    return [event["type"] for event in report["history"]]


def _is_callback(case: dict[str, Any]) -> bool:
    return any(need.endswith(".waitForTaskToken") for need in case["needs"])
