"""A map run redriven twice under hostile delivery, for thousands of seeds: counts exact.

Runs tests/unit/map_run_fuzz.py's seeded schedule (the real Stepper on the in-memory
ports; reordered, duplicated, unacknowledged and held-back messages; two parent
redrives) for ``--seeds`` seeds from ``--first``, and prints each broken seed with what
it breaks, the outcomes by (redrives, status) and the wall time. Exit 1 if any broke.
tests/integration/test_map_run_counts_fuzz.py runs seeds 0-649 in the suite.

    .venv/bin/python bench/map_run_fuzz.py --seeds 5000
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.unit.map_run_fuzz import check, run_seed


def main() -> int:
    """Run the seeds; exit 1 if any seed's run breaks an invariant."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5000, help="how many seeds")
    parser.add_argument("--first", type=int, default=0, help="the first seed")
    args = parser.parse_args()
    started = time.perf_counter()
    outcomes: Counter[tuple[int, str]] = Counter()
    broken = 0
    for seed in range(args.first, args.first + args.seeds):
        outcome = run_seed(seed)
        outcomes[(outcome.redrives, outcome.head.status)] += 1
        problems = check(outcome)
        if problems:
            broken += 1
            print(f"seed {seed}: {'; '.join(problems)}")
    elapsed = time.perf_counter() - started
    print(f"seeds run:    {args.seeds} (from {args.first})")
    print(f"outcomes:     {dict(outcomes)}")
    print(f"broken seeds: {broken}")
    print(f"wall time:    {elapsed:.1f} s")
    command = ".venv/bin/python bench/map_run_fuzz.py"
    print(f"reproduce: {command} --seeds {args.seeds} --first {args.first}")
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
