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

from tests.conformance.test_conformance import ALL, ORACLE, PURE, _ids
from tests.unit.map_run_double import FakeMapRuns

CASES = [c for c in PURE if "DISTRIBUTED" in json.dumps(c["definition"])]
JSON_READER = [
    c
    for c in ALL
    if c["needs"] == ["arn:aws:states:::s3:getObject"]
    and '"InputType": "JSON"' in json.dumps(c["definition"])
]
FILE = [  # file.json of the JSON reader cases (the AWS-recorded output of the base case)
    {"verdict": "true", "statement_date": "6/11/2008", "statement_source": "speech"},
    {"verdict": "false", "statement_date": "6/7/2022", "statement_source": "television"},
    {"verdict": "mostly-true", "statement_date": "5/18/2016", "statement_source": "news"},
]


@pytest.mark.skipif(ORACLE is None or not CASES, reason="../shared/conformance is absent")
@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_distributed_case_matches_aws_with_a_map_run_double(case: dict[str, Any]) -> None:
    _check(case, FakeMapRuns())


@pytest.mark.skipif(ORACLE is None or not JSON_READER, reason="../shared/conformance is absent")
@pytest.mark.parametrize("case", JSON_READER, ids=_ids(JSON_READER))
def test_json_reader_case_matches_aws_with_a_stand_in_s3(case: dict[str, Any]) -> None:
    """MaxItems (MAX_ITEMS_PATH's "2" from a variable), JSONata batching, a non-array file."""
    body: Any = FILE
    if "no_json_list_object" in case["id"]:
        body = {"not": "a list"}
    _check(case, FakeMapRuns({("bucket-name", "file.json"): body}))


def _check(case: dict[str, Any], runs: FakeMapRuns) -> None:
    assert ORACLE is not None
    sm = parse(case["definition"])
    state = new_execution(name="e", input=case["input"], now=1.0, state_machine_name="sm")
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
