"""Scores StepFlow on the 71 AWS-recorded dev Task cases (issues 13 and 14), each on moto.

Each case runs as its LocalStack test set it up (tests/conformance/task_cases.py):
its resources created in moto in process, its Lambda functions as Python
stand-ins, its ``.waitForTaskToken`` tasks answered by the test's worker, and
every other call through the registered integrations. A case passes when the
oracle's ``compare`` (status, then output or error/cause; status and error only
where the recording has placeholders) and ``history_matches`` (the event types)
both agree with AWS.

The 14 of issue 14 (nested executions, ItemReader/ResultWriter) also pass only when
their spec's ``check`` agrees (the exact output, cause or objects written, which the
oracle cannot compare in a recording with placeholders).

Prints each failing case with its reason, then ``tasks: P/57 (x%)`` (issue 13) and
``issue 14: P/14 (x%)``; ``--issue14`` runs only the 14.

Run: ``.venv/bin/python bench/conformance_tasks.py [--issue14] [--cases PATH] [--only TEXT]
[--json]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conformance.task_cases import SPECS, SPECS_13, calls, key, run_case  # noqa: E402
from tests.conformance.task_cases_14 import SPECS_14  # noqa: E402
from tests.conformance.task_harness import score, unregistered  # noqa: E402
from tests.conformance.task_standins import api_stand_in  # noqa: E402

SHARED = ROOT.parent / "shared" / "conformance"


def _oracle(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("sfn_oracle", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    """Run the cases and print the score."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=str(SHARED / "aws-recorded-dev.jsonl"))
    parser.add_argument("--only", help="run only cases whose id contains this")
    parser.add_argument("--json", action="store_true", help="also print a JSON summary")
    parser.add_argument("--issue14", action="store_true", help="run only the 14 of issue 14")
    args = parser.parse_args()
    path = Path(args.cases)
    if not path.exists():
        sys.exit(f"{path} is absent: the cases live in ../shared/conformance")
    oracle = _oracle(path.parent / "sfn_oracle.py")
    cases = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    in_scope = [c for c in cases if c["needs"] and key(c) in SPECS]
    if args.issue14:
        in_scope = [c for c in in_scope if key(c) in SPECS_14]
    if args.only:
        in_scope = [c for c in in_scope if args.only in c["id"]]
    failures: list[dict[str, Any]] = []
    history = 0
    started = time.perf_counter()
    with api_stand_in() as api:
        for case in in_scope:
            result = run_case(case, api)
            ok, why = score(oracle, case, result)
            reported = {"ok": True, **result}
            reported["history_types"] = [e["type"] for e in result["history"]]
            history += bool(oracle.history_matches(case, reported))
            if not ok:
                missing = unregistered(calls(case))
                if missing:
                    why = "integration not registered: " + "; ".join(missing)
                failures.append({"case": key(case), "reason": why})
    seconds = time.perf_counter() - started
    for failure in failures:
        print(f"FAIL {failure['case']}\n     {failure['reason']}")
    print(f"\nhistory event types match: {history}/{len(in_scope)}; {seconds:.1f} s")
    failed = {f["case"] for f in failures}
    scores = {}
    for label, specs in (("tasks", SPECS_13), ("issue 14", SPECS_14)):
        ran = [key(c) for c in in_scope if key(c) in specs]
        if ran:
            passed = sum(name not in failed for name in ran)
            scores[label] = {"passed": passed, "total": len(ran)}
            print(f"{label}: {passed}/{len(ran)} ({100.0 * passed / len(ran):.1f}%)")
    if args.json:
        print(json.dumps({"scores": scores, "failures": failures}, sort_keys=True))


if __name__ == "__main__":
    main()
