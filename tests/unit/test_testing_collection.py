"""execute() and the history it retains: full collections put off, thresholds back; one page."""

from __future__ import annotations

import copy
import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.testing import execute
from stepflow.testing.collection import (
    FULL_COLLECTION_THRESHOLD,
    YOUNG_COLLECTION_THRESHOLD,
    young_collections_only,
)

LOOP: dict[str, Any] = {
    "StartAt": "Check",
    "States": {
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.i", "NumericLessThan": 300, "Next": "Add"}],
            "Default": "Done",
        },
        "Add": {
            "Type": "Pass",
            "Parameters": {"i.$": "States.MathAdd($.i, 1)"},
            "Next": "Check",
        },
        "Done": {"Type": "Succeed"},
    },
}


@pytest.fixture
def thresholds() -> Iterator[None]:
    """Eager collections (every generation often), restored after the test.

    What the test process holds is frozen first: CPython skips a full collection
    until the old generation has grown by a quarter, which a short run would never
    do next to a test process's heap.
    """
    saved = gc.get_threshold()
    gc.freeze()
    gc.collect()  # the old generation is now empty: it counts from zero
    gc.set_threshold(50, 2, 2)
    try:
        yield
    finally:
        gc.set_threshold(*saved)
        gc.unfreeze()


def _collections(run: Any) -> dict[int, int]:
    counts = {0: 0, 1: 0, 2: 0}

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            counts[info["generation"]] += 1

    gc.callbacks.append(count)
    try:
        run()
    finally:
        gc.callbacks.remove(count)
    return counts


@pytest.mark.usefixtures("thresholds")
def test_a_run_makes_young_collections_but_no_full_one() -> None:
    # long enough for generation-1 collections at one young collection in 10,000 allocations
    longer = copy.deepcopy(LOOP)
    longer["States"]["Check"]["Choices"][0]["NumericLessThan"] = 10_000
    counts = _collections(lambda: execute(longer, {"i": 0}))
    assert counts[2] == 0
    assert counts[0] > 0 and counts[1] > 0
    assert gc.get_threshold() == (50, 2, 2)


@pytest.mark.usefixtures("thresholds")
def test_without_it_the_same_run_makes_full_collections() -> None:
    from stepflow.testing.driver import open_environment

    def run() -> None:
        with open_environment() as env:
            env.run(env.start(LOOP, {"i": 0}), skip_open_tasks=True)

    assert _collections(run)[2] > 0  # what the test above rules out does happen


@pytest.mark.usefixtures("thresholds")
def test_a_handler_sees_full_collections_put_off() -> None:
    seen: list[tuple[int, int, int]] = []
    definition = {
        "StartAt": "Work",
        "States": {
            "Work": {
                "Type": "Task",
                "Resource": "arn:aws:lambda:us-east-1:123456789012:function:work",
                "End": True,
            }
        },
    }
    result = execute(definition, {}, handlers={"work": lambda _: seen.append(gc.get_threshold())})
    assert result.status == "SUCCEEDED"
    assert seen == [(YOUNG_COLLECTION_THRESHOLD, 2, FULL_COLLECTION_THRESHOLD)]
    assert gc.get_threshold() == (50, 2, 2)


@pytest.mark.usefixtures("thresholds")
def test_overlapping_runs_restore_the_thresholds_once_the_last_ends() -> None:
    entered, release = threading.Barrier(2), threading.Event()
    inside: list[tuple[int, int, int]] = []

    def hold() -> None:
        with young_collections_only():
            entered.wait()
            release.wait()

    other = threading.Thread(target=hold)
    other.start()
    with young_collections_only():
        entered.wait()
        with young_collections_only():  # re-entered
            inside.append(gc.get_threshold())
        inside.append(gc.get_threshold())
    inside.append(gc.get_threshold())  # the other run is still in progress
    release.set()
    other.join()
    assert inside == [(YOUNG_COLLECTION_THRESHOLD, 2, FULL_COLLECTION_THRESHOLD)] * 3
    assert gc.get_threshold() == (50, 2, 2)


@pytest.mark.usefixtures("thresholds")
def test_thresholds_changed_during_a_run_are_kept() -> None:
    with young_collections_only():
        gc.set_threshold(900, 9, 9)
    assert gc.get_threshold() == (900, 9, 9)


def test_young_collections_still_reclaim_cycles() -> None:
    import weakref

    class Node:
        other: Any = None

    with young_collections_only():
        a, b = Node(), Node()
        a.other, b.other = b, a
        ref = weakref.ref(a)
        del a, b
        gc.collect(0)
        assert ref() is None


def test_the_in_memory_history_is_read_in_one_page(monkeypatch: pytest.MonkeyPatch) -> None:
    from stepflow.runtime import memory
    from stepflow.testing import environment_reads

    monkeypatch.setattr(environment_reads, "HISTORY_PAGE", 7)  # a page would end inside each commit
    decoded: list[int] = []
    thawed = memory._thawed

    def counting(chunks: Any, ends: Any, start: int, stop: int) -> list[dict[str, Any]]:
        page = thawed(chunks, ends, start, stop)
        decoded.append(len(page))
        return page

    monkeypatch.setattr(memory, "_thawed", counting)
    result = execute(LOOP, {"i": 0})
    assert len(result.history) == 2 + 2 * (2 * 300 + 2)
    assert decoded == [len(result.history)]


@pytest.mark.usefixtures("thresholds")
def test_a_process_that_turned_automatic_collection_off_keeps_it_off_during_a_run() -> None:
    gc.set_threshold(0, 2, 2)
    with young_collections_only():
        inside = gc.get_threshold()
    assert inside == (0, 2, FULL_COLLECTION_THRESHOLD)
    assert gc.get_threshold() == (0, 2, 2)
