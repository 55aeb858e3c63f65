"""Scores StepFlow against the AWS-recorded conformance cases in ../shared (skipped if absent).

Outcomes are compared with the oracle's own ``compare`` so this test and
``sfn_oracle.py check`` always agree.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conformance.runner import run

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "conformance"
CASES = SHARED / "aws-recorded-dev.jsonl"

pytestmark = pytest.mark.conformance


def _oracle() -> ModuleType | None:
    source = SHARED / "sfn_oracle.py"
    if not source.exists():
        return None
    spec = importlib.util.spec_from_file_location("sfn_oracle", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load() -> list[dict[str, Any]]:
    if not CASES.exists():
        return []
    return [json.loads(line) for line in CASES.read_text().splitlines() if line.strip()]


ORACLE = _oracle()
ALL = _load()
PURE = [c for c in ALL if not c["needs"]]

# A DISTRIBUTED Map runs as a map run (StartMapRun), which the runtime's map run
# coordinator carries out (runtime/map_runs.py, built on the "maprun" branch of issue 14).
# Until that module is present the run never ends: the cases whose Map runs items are
# expected to fail (those that fail before the run starts pass).
MAP_RUNS = importlib.util.find_spec("stepflow.runtime.map_runs") is not None


def _param(case: dict[str, Any]) -> Any:
    if MAP_RUNS or "DISTRIBUTED" not in json.dumps(case["definition"]):
        return case
    if case["expected"].get("status") != "SUCCEEDED":
        return case
    reason = "a distributed Map needs the runtime's map run coordinator (runtime/map_runs.py)"
    return pytest.param(case, marks=pytest.mark.xfail(reason=reason, strict=True))


PURE_PARAMS = [_param(c) for c in PURE]
"""The pure-flow cases as test parameters (with the expected failures marked)."""


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c["id"].split("::")[-1] for c in cases]


@pytest.mark.skipif(ORACLE is None, reason="../shared/conformance is absent (as in a user's clone)")
@pytest.mark.parametrize("case", PURE_PARAMS, ids=_ids(PURE))
def test_pure_flow_case_matches_aws(case: dict[str, Any]) -> None:
    """Every pure-flow case (JSONPath, JSONata, variables): outcome and event types,
    through the runtime's Stepper on in-memory ports. The DynamoDB log on moto gives
    the same on every case: see test_parity.py."""
    assert ORACLE is not None
    result = run(case["definition"], case["input"])
    reported = {"ok": True, **result, "history_types": [e["type"] for e in result["history"]]}
    ok, why = ORACLE.compare(case, reported)
    assert ok, (
        f"{why}: got {result['status']} {result['output']} {result['error']} {result['cause']}"
    )
    assert ORACLE.history_matches(case, reported), (
        f"history {reported['history_types']} != {case['history_types']}"
    )
