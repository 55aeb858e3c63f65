"""What recording the counter loop's history costs by itself, per transition (CPU).

``execute()`` records every event as Step Functions does, into the in-memory log,
which keeps what it is given as a store would. Since issue 18 round 2 a state's
entered and exited events travel as compact tuples (``stepflow.engine.history_events``)
that the log keeps as they are, and the history is decoded into GetExecutionHistory
dicts only when the result's ``history`` is read. This measures those steps alone, on
the history of a real run, without any evaluation: building the events as the engine
does (a tuple per state event, dicts for the others; texts encoded once per new
value), the log's copy in (``memory_chunks.frozen``: the compact events checked, the
dicts encoded), and, apart, the read that ``execute()`` no longer makes (the dicts
made again from what was stored). The first two are a floor for ``execute()`` that no
faster evaluator can go under; ``--dicts`` measures the events as dicts and their
``orjson`` copy in and out instead (what ``execute()`` did before round 2).

    .venv/bin/python bench/history_floor.py [--iterations 2000] [--runs 15] [--dicts]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stepflow.runtime.memory_chunks import ends_of, frozen, thawed
from stepflow.testing import execute
from stepflow.testing.collection import young_collections_only

from bench.throughput import counter_loop


def best_cpu(work: Callable[[], Any], runs: int) -> float:
    """The least CPU seconds of ``runs`` calls of ``work``."""
    best = float("inf")
    for _ in range(runs):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best


def rebuild(history: list[dict[str, Any]], compact: bool) -> Callable[[], list[Any]]:
    """Build the same events again, as the engine does (texts encoded once per new value).

    ``compact``: a state's entered or exited event without assigned variables is a tuple.
    """
    shapes: list[tuple[dict[str, Any], str | None, Any, str | None, Any, bool]] = []
    for event in history:
        key = next((k for k in event if k.endswith("EventDetails")), None)
        details = event.get(key) if key else None
        value, field = None, None
        if isinstance(details, dict):
            field = "input" if "input" in details else "output" if "output" in details else None
            value = orjson.loads(details[field]) if field else None
            if shapes and value == shapes[-1][4]:
                value = shapes[-1][4]  # one object, as in the engine (the next state's input)
        state_event = (
            compact
            and key in ("stateEnteredEventDetails", "stateExitedEventDetails")
            and isinstance(details, dict)
            and len(details) == 3
        )
        shapes.append((event, key, details, field, value, state_event))

    def build() -> list[Any]:
        events: list[Any] = []
        last: Any = None
        text = ""
        for event, key, details, field, value, state_event in shapes:
            if field is not None and value is not last:
                text, last = orjson.dumps(value).decode(), value
            if state_event:
                assert key is not None and field is not None and isinstance(details, dict)
                events.append(
                    (
                        event["id"],
                        event["previousEventId"],
                        event["timestamp"],
                        event["type"],
                        key,
                        details["name"],
                        field,
                        text,
                    )
                )
                continue
            built: dict[str, Any] = {
                "id": event["id"],
                "previousEventId": event["previousEventId"],
                "timestamp": event["timestamp"],
                "type": event["type"],
            }
            if key is not None and isinstance(details, dict):
                copy = {**details, f"{field}Details": {"truncated": False}}
                if field is not None:
                    copy[field] = text
                built[key] = copy
            events.append(built)
        return events

    return build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--dicts", action="store_true", help="events as dicts (before round 2)")
    args = parser.parse_args(argv)
    history = execute(counter_loop(args.iterations), {"i": 0}).history
    transitions = sum(1 for e in history if e["type"].endswith("StateEntered"))
    build = rebuild(history, compact=not args.dicts)
    built = build()
    if args.dicts:
        stored = orjson.dumps(built)
        size = f"{len(stored):,} bytes stored"
        steps = {
            "build the events": build,
            "copy in (orjson.dumps)": lambda: orjson.dumps(built),
            "copy out (orjson.loads)": lambda: orjson.loads(stored),
        }
        apart: dict[str, Callable[[], Any]] = {}
    else:
        chunks = frozen(built)
        ends = ends_of([], chunks)
        assert thawed(chunks, ends, 0, len(built)) == history
        size = f"{sum(isinstance(e, tuple) for e in built)} of them compact"
        steps = {"build the events": build, "copy in (frozen)": lambda: frozen(built)}
        apart = {"read (result.history)": lambda: thawed(chunks, ends, 0, len(built))}
    print(
        f"counter loop, {args.iterations} iterations: {transitions} transitions, "
        f"{len(history)} events, {size}"
    )
    total = 0.0
    for name, work in steps.items():
        with young_collections_only():  # as execute() runs
            per = best_cpu(work, args.runs) / transitions * 1e6
        total += per
        print(f"  {name:<24} {per:6.2f} µs per transition")
    print(
        f"  {'history alone':<24} {total:6.2f} µs per transition "
        f"(at most {1e6 / total:,.0f} transitions per CPU second)"
    )
    for name, work in apart.items():
        with young_collections_only():
            per = best_cpu(work, args.runs) / transitions * 1e6
        print(f"  {name:<24} {per:6.2f} µs per transition, when read (not in execute())")
    dicts = " --dicts" if args.dicts else ""
    print(
        f"reproduce: .venv/bin/python bench/history_floor.py --iterations {args.iterations} "
        f"--runs {args.runs}{dicts}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
