"""The API fuzz run long: Hypothesis over every operation's botocore input shape.

Runs ``tests/api/test_fuzz_api.py`` (the API Lambda's handler, in process)
and, with ``--http``, ``tests/e2e/test_local_fuzz.py`` (raw HTTP to ``stepflow
local``) under ``HYPOTHESIS_PROFILE=long`` (5,000 examples per test, a new
random seed each run), then prints how many requests were sent and the answers
by status. Any 5xx or hang fails the run.

    .venv/bin/python bench/fuzz_api.py [--http]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", action="store_true", help="also fuzz stepflow local over HTTP")
    parser.add_argument("--profile", default="long", help="HYPOTHESIS_PROFILE (ci or long)")
    args = parser.parse_args(argv)
    os.environ["HYPOTHESIS_PROFILE"] = args.profile
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    import pytest

    targets = ["tests/api/test_fuzz_api.py"]
    if args.http:
        targets.append("tests/e2e/test_local_fuzz.py")
    code = pytest.main(["-p", "no:xdist", "-q", "-p", "no:warnings", "-x", *targets])
    from tests.api import test_fuzz_api

    counts = dict(test_fuzz_api.STATUSES)
    print(f"in-process handler: {sum(counts.values())} requests, by status {counts}")
    if args.http:
        from tests.e2e import test_local_fuzz

        counts = dict(test_local_fuzz.STATUSES)
        print(f"stepflow local over HTTP: {sum(counts.values())} requests, by status {counts}")
    return int(code)


if __name__ == "__main__":
    raise SystemExit(main())
