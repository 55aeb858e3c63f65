"""The live tail: every event after ``after`` once, in order, whatever the page boundaries."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from stepflow.live.tail import HistoryGapError, Tail


class Growing:
    """A history read by index tokens (as the memory log does) that grows between reads."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.reads = 0

    def __call__(self, token: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        self.reads += 1
        start = int(token or 0)
        page = self.events[start : start + limit]
        more = start + limit < len(self.events)
        return page, str(start + limit) if more else None


def _events(n: int, last: str = "ExecutionSucceeded") -> list[dict[str, Any]]:
    return [{"id": i, "type": last if i == n else "PassStateEntered"} for i in range(1, n + 1)]


def test_a_history_read_while_it_grows_gives_each_event_once_in_order() -> None:
    history = Growing([])
    tail = Tail(history, page_size=3, interval=0.001)
    seen: list[int] = []
    for n in range(1, 12):  # one event committed per poll, across page boundaries
        history.events = _events(n, last="PassStateExited")
        seen += [e["id"] for e in tail.poll()]
    history.events = _events(12)
    seen += [e["id"] for e in tail.events()]
    assert seen == list(range(1, 13))
    assert tail.ended and tail.last == 12


@pytest.mark.parametrize("after", [0, 1, 5, 11])
def test_resuming_after_n_gives_n_plus_1_to_the_end(after: int) -> None:
    tail = Tail(Growing(_events(12)), after=after, page_size=4)
    assert [e["id"] for e in tail.events()] == list(range(after + 1, 13))


def test_resuming_after_the_ending_event_ends_at_once() -> None:
    tail = Tail(Growing(_events(12)), after=12)
    assert list(tail.events()) == [] and tail.ended


def test_a_skipped_id_is_an_error_not_a_silent_loss() -> None:
    events = _events(5)
    del events[2]
    with pytest.raises(HistoryGapError, match="event 3 is missing"):
        list(Tail(Growing(events)).events())


@pytest.mark.parametrize("bad", [None, "1", 0, -1, True, 1.5])
def test_an_event_without_a_positive_integer_id_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="positive integer 'id'"):
        list(Tail(Growing([{"id": bad, "type": "X"}])).events())


def test_a_quiet_history_ends_at_the_deadline_or_the_stop() -> None:
    history = Growing(_events(3, last="PassStateEntered"))
    tail = Tail(history, interval=0.001)
    assert len(list(tail.events(deadline=time.monotonic() + 0.05))) == 3
    assert not tail.ended and history.reads > 1
    stop = threading.Event()
    stop.set()
    assert list(tail.events(stop=stop)) == []


@pytest.mark.parametrize(("after", "size"), [(-1, 10), (0, 0), (0, 1001)])
def test_bad_arguments_are_refused(after: int, size: int) -> None:
    with pytest.raises(ValueError):
        Tail(Growing([]), after=after, page_size=size)


def test_an_ending_event_ends_only_as_the_last_one_while_the_head_is_terminal() -> None:
    events = _events(3, last="ExecutionFailed")
    history, running = Growing(events), [True]
    tail = Tail(history, terminal=lambda: not running[0])
    assert [e["id"] for e in tail.poll()] == [1, 2, 3] and not tail.ended  # being redriven
    events += [{"id": 4, "type": "ExecutionRedriven"}, {"id": 5, "type": "ExecutionSucceeded"}]
    running[0] = False
    assert [e["id"] for e in tail.poll()] == [4, 5] and tail.ended
    # Read from the start, the first failure is passed over.
    assert [e["id"] for e in Tail(Growing(events), terminal=lambda: True).events()] == [
        1,
        2,
        3,
        4,
        5,
    ]
