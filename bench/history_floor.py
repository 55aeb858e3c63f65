"""What recording the counter loop's history costs by itself, per transition (CPU).

``execute()`` records every event as Step Functions does and the in-memory log
copies them in and out as a store would. This measures those steps alone, on the
history of a real run, without any evaluation: building the event dicts (each with
its JSON text, encoded once per new value), the log's copy in (one ``orjson.dumps``
per commit) and copy out (``orjson.loads`` when the history is read). Their sum
is a floor for ``execute()`` that no faster evaluator can go under.

    .venv/bin/python bench/history_floor.py [--iterations 2000] [--runs 15]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stepflow.testing import execute
from stepflow.testing.collection import young_collections_only
from throughput import counter_loop


def best_cpu(work: Callable[[], Any], runs: int) -> float:
    """The least CPU seconds of ``runs`` calls of ``work``."""
    best = float("inf")
    for _ in range(runs):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best


def rebuild(history: list[dict[str, Any]]) -> Callable[[], list[dict[str, Any]]]:
    """Build the same events again, as the engine does (texts encoded once per new value)."""
    shapes: list[tuple[dict[str, Any], str | None, Any, str | None, Any]] = []
    for event in history:
        key = next((k for k in event if k.endswith("EventDetails")), None)
        details = event.get(key) if key else None
        value, field = None, None
        if isinstance(details, dict):
            field = "input" if "input" in details else "output" if "output" in details else None
            value = orjson.loads(details[field]) if field else None
            if shapes and value == shapes[-1][4]:
                value = shapes[-1][4]  # one object, as in the engine (the next state's input)
        shapes.append((event, key, details, field, value))

    def build() -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        last: Any = None
        text = ""
        for event, key, details, field, value in shapes:
            built: dict[str, Any] = {
                "id": event["id"],
                "previousEventId": event["previousEventId"],
                "timestamp": event["timestamp"],
                "type": event["type"],
            }
            if key is not None and isinstance(details, dict):
                copy = {**details, f"{field}Details": {"truncated": False}}
                if field is not None:
                    if value is not last:
                        text, last = orjson.dumps(value).decode(), value
                    copy[field] = text
                built[key] = copy
            events.append(built)
        return events

    return build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    history = execute(counter_loop(args.iterations), {"i": 0}).history
    transitions = sum(1 for e in history if e["type"].endswith("StateEntered"))
    stored = orjson.dumps(history)
    steps = {
        "build the events": rebuild(history),
        "copy in (orjson.dumps)": lambda: orjson.dumps(history),
        "copy out (orjson.loads)": lambda: orjson.loads(stored),
    }
    total = 0.0
    print(
        f"counter loop, {args.iterations} iterations: {transitions} transitions, "
        f"{len(history)} events, {len(stored):,} bytes stored"
    )
    for name, work in steps.items():
        with young_collections_only():  # as execute() runs
            per = best_cpu(work, args.runs) / transitions * 1e6
        total += per
        print(f"  {name:<24} {per:6.2f} µs per transition")
    print(
        f"  {'history alone':<24} {total:6.2f} µs per transition "
        f"(at most {1e6 / total:,.0f} transitions per CPU second)"
    )
    print(
        f"reproduce: .venv/bin/python bench/history_floor.py --iterations {args.iterations} "
        f"--runs {args.runs}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
