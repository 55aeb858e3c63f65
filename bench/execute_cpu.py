"""CPU time of ``stepflow.testing.execute`` on the counter loop: best of N runs.

Wall-clock figures swing on a shared machine; ``time.process_time`` counts only
this process's CPU. The definition is parsed once, as a test suite would.

    .venv/bin/python bench/execute_cpu.py [--iterations 2000] [--runs 15]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stepflow.asl import parse
from stepflow.testing import execute
from throughput import counter_loop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    machine = parse(counter_loop(args.iterations))
    best = float("inf")
    for _ in range(args.runs):
        started = time.process_time()
        result = execute(machine, {"i": 0})
        best = min(best, time.process_time() - started)
        assert result.status == "SUCCEEDED", result
    print(
        f"execute() on the counter loop, {args.iterations} iterations: best CPU {best:.4f} s "
        f"of {args.runs} runs"
    )
    print(
        f"reproduce: .venv/bin/python bench/execute_cpu.py --iterations {args.iterations} "
        f"--runs {args.runs}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
