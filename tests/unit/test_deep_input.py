"""Inputs nested deeper than Python's recursion limit run in memory as they do durably.

GIVEN an input nested 5000 levels deep (JSON the API accepts: StartExecution
runs it on the durable stack), WHEN ``execute()`` (the driver behind TestState
and StartSyncExecution) runs a Pass on it, THEN it succeeds; the in-memory log
used to raise RecursionError copying the record, so TestState answered 500.
"""

from __future__ import annotations

from typing import Any

from stepflow.runtime.memory import _clone_deep
from stepflow.testing import execute

DEPTH = 5000


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def depth_of(value: Any) -> int:
    depth = 0
    while isinstance(value, list):
        depth += 1
        value = value[0] if value else None
    return depth


def test_a_pass_on_an_input_deeper_than_the_recursion_limit_succeeds() -> None:
    definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    result = execute(definition, nested(DEPTH))
    assert result.status == "SUCCEEDED"


def test_the_deep_clone_copies_every_level_and_shares_no_container() -> None:
    original: list[Any] = nested(DEPTH)
    original[0].append({"k": [1, "two"]})
    copy = _clone_deep(original)
    assert depth_of(copy) == DEPTH
    assert copy is not original and copy[0] is not original[0]
    assert copy[0][1] == {"k": [1, "two"]} and copy[0][1] is not original[0][1]
