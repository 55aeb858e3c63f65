"""CPU cost of signing and verifying one internal message, by body size: best of N runs.

Each figure is one ``sign`` plus one ``verify`` of the wire form after a JSON
round trip (what a producer and a consumer each pay), in microseconds of
``time.process_time``.

    .venv/bin/python bench/signing.py [--messages 2000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import time

from stepflow.runtime import Message
from stepflow.runtime.signing import MessageSigner

SIZES = (200, 4_096, 65_536, 262_144)


def message(size: int) -> Message:
    body = {"type": "TaskSucceeded", "task_id": "Work#1#0", "output": {"data": "x" * size}}
    arn = "arn:aws:states:us-east-1:123456789012:execution:Orders:e1"
    return Message(arn, f"{arn}#7#0#result", "event", body, 1_700_000_000.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    signer = MessageSigner.random()
    for size in SIZES:
        sample = message(size)
        wire = json.loads(json.dumps(signer.sign(sample)))
        count = max(20, args.messages * 200 // size)
        best = float("inf")
        for _ in range(args.runs):
            started = time.process_time()
            for _ in range(count):
                signer.sign(sample)
                signer.verify(wire)
            best = min(best, (time.process_time() - started) / count)
        print(f"body {size:>7} B: sign + verify {best * 1e6:9.1f} us per message")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
