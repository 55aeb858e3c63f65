"""The dev conformance cases with a distributed Map over an items array, on the engine side.

The runtime's map run coordinator is another part (runtime/map_runs.py); here a test
double answers ``StartMapRun`` (tests/unit/map_run_double.py), so what these cases
prove is the engine's part: the Map's events, the run's spec and the state's result.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from stepflow.asl import parse
from stepflow.data.serialize import dumps
from stepflow.engine import Start, decide, new_execution

from tests.conformance.test_conformance import ORACLE, PURE, _ids
from tests.unit.map_run_double import FakeMapRuns

CASES = [c for c in PURE if "DISTRIBUTED" in json.dumps(c["definition"])]


@pytest.mark.skipif(ORACLE is None or not CASES, reason="../shared/conformance is absent")
@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_distributed_case_matches_aws_with_a_map_run_double(case: dict[str, Any]) -> None:
    assert ORACLE is not None
    sm = parse(case["definition"])
    state = new_execution(name="e", input=case["input"], now=1.0, state_machine_name="sm")
    runs = FakeMapRuns()
    final = runs.drive(sm, decide(sm, state, Start(), 1.0), {})
    reported = {
        "ok": True,
        "status": final.status,
        "output": None if final.output is None else dumps(final.output),
        "error": final.error,
        "cause": final.cause,
        "history_types": [e["type"] for e in runs.events],
    }
    ok, why = ORACLE.compare(case, reported)
    assert ok, f"{why}: {reported}"
    assert ORACLE.history_matches(case, reported), reported["history_types"]
