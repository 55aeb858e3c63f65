"""CPU time of ``stepflow.testing.execute`` on the counter loop: best of N runs, per size.

Wall-clock figures swing on a shared machine; ``time.process_time`` counts only
this process's CPU. The definition is parsed once, as a test suite would. Several
sizes show whether the cost per transition stays flat as the history grows.

    .venv/bin/python bench/execute_cpu.py [--iterations 2000 ...] [--runs 15]
        [--query-language JSONata]

To compare with an earlier commit, run the same command with that commit's
``layers/stepflow`` first on ``PYTHONPATH`` (e.g. unpacked by ``git archive``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import stepflow
from stepflow.asl import parse
from stepflow.testing import execute

from bench.throughput import LOOPS


def best_cpu(iterations: int, runs: int, query_language: str = "JSONPath") -> float:
    """The least CPU time of ``runs`` executions of the counter loop (after one warm-up)."""
    machine = parse(LOOPS[query_language](iterations))
    execute(machine, {"i": 0})
    best = float("inf")
    for _ in range(runs):
        started = time.process_time()
        result = execute(machine, {"i": 0})
        best = min(best, time.process_time() - started)
        assert result.status == "SUCCEEDED", result
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, nargs="+", default=[2000])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--query-language", choices=sorted(LOOPS), default="JSONPath")
    args = parser.parse_args(argv)
    print(f"stepflow from {Path(stepflow.__file__).parent}")
    for iterations in args.iterations:
        best = best_cpu(iterations, args.runs, args.query_language)
        transitions = 3 * iterations + 2
        print(
            f"execute() on the {args.query_language} counter loop, {iterations} iterations "
            f"({transitions} transitions): "
            f"best CPU {best:.4f} s of {args.runs} runs, {best / transitions * 1e6:.2f} µs "
            f"per transition"
        )
    sizes = " ".join(map(str, args.iterations))
    command = f"bench/execute_cpu.py --iterations {sizes} --runs {args.runs}"
    if args.query_language != "JSONPath":
        command += f" --query-language {args.query_language}"
    print(f"reproduce: .venv/bin/python {command}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
