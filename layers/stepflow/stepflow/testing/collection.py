"""Garbage collection while :func:`~stepflow.testing.execute` runs: young generations only.

An in-memory execution keeps its whole history (and the log's copy of it) alive
until it ends, so almost every container it allocates is long-lived. CPython's
full (generation 2) collections re-scan everything alive each time the old
generation grows by a quarter: over a run of 10^5 transitions that was 40 % of
its time, for no garbage found. While at least one run is in progress, full
collections are put off (their threshold raised) and young ones made rarer; they still run,
so cycles that die young (an exception's traceback) are still reclaimed. The
thresholds in force before the first run began are put back when the last one
ends, unless someone else changed them in between. A process that turned automatic
collection off (a young threshold of 0) keeps it off.

The price: cyclic garbage a handler makes lives up to 10,000 allocations instead of
700 before it is reclaimed, so a handler that leaves big cycles behind peaks higher
while a run is in progress.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

FULL_COLLECTION_THRESHOLD = 1_000_000
"""Generation-1 collections between two full ones while a run is in progress (none, in effect)."""

YOUNG_COLLECTION_THRESHOLD = 10_000
"""Allocations between two young collections while a run is in progress (CPython: 700).

Nearly all a run allocates survives (its history); scanning it young every 700
allocations, and again in generation 1, cost 3-6 % of a run of Pass and Choice states.
"""

_lock = threading.Lock()
_runs = 0
_saved: tuple[int, int, int] | None = None
_ours: tuple[int, int, int] | None = None


@contextlib.contextmanager
def young_collections_only() -> Iterator[None]:
    """Put off full collections for the duration of the block (re-entrant, thread-safe)."""
    global _runs, _saved, _ours
    with _lock:
        if _runs == 0:
            _saved = gc.get_threshold()
            first, second, third = _saved
            _ours = (
                # 0: the process turned automatic collection off; a run leaves it off.
                first and max(first, YOUNG_COLLECTION_THRESHOLD),
                second,
                max(third, FULL_COLLECTION_THRESHOLD),
            )
            gc.set_threshold(*_ours)
        _runs += 1
    try:
        yield
    finally:
        with _lock:
            _runs -= 1
            if _runs == 0:
                if _saved is not None and gc.get_threshold() == _ours:
                    gc.set_threshold(*_saved)
                _saved = _ours = None
