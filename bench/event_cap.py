"""How fast a runaway Pass/Choice loop is stopped by the event cap, per backend.

The loop never ends by itself; ``max_events`` (``Limits.max_events_per_execution``)
fails it with ``States.Runtime`` once its history holds that many events.
Prints the status, the history length and the CPU time.

    .venv/bin/python bench/event_cap.py [--memory 100000] [--moto 20000]
"""

from __future__ import annotations

import argparse
import time

from stepflow.testing import execute

LOOP = {
    "StartAt": "Spin",
    "States": {
        "Spin": {"Type": "Pass", "Next": "Again"},
        "Again": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.stop", "IsPresent": True, "Next": "Done"}],
            "Default": "Spin",
        },
        "Done": {"Type": "Succeed"},
    },
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory", type=int, default=100_000, help="cap on the in-memory log")
    parser.add_argument("--moto", type=int, default=20_000, help="cap on DynamoDB (moto)")
    args = parser.parse_args(argv)
    for backend, cap in (("memory", args.memory), ("moto", args.moto)):
        started = time.process_time()
        result = execute(LOOP, {}, max_events=cap, durable=backend)
        took = time.process_time() - started
        print(
            f"{backend:6} cap {cap:>9,}: {result.status} {result.error}, "
            f"{len(result.history):,} events, {took:.1f} s CPU"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
