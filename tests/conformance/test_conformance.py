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


def _uses_jsonata(case: dict[str, Any]) -> bool:
    text = json.dumps(case["definition"])
    return '"JSONata"' in text or '"Assign"' in text


ORACLE = _oracle()
ALL = _load()
PURE = [c for c in ALL if not c["needs"]]
JSONPATH = [c for c in PURE if not _uses_jsonata(c)]


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c["id"].split("::")[-1] for c in cases]


@pytest.mark.skipif(ORACLE is None, reason="../shared/conformance is absent (as in a user's clone)")
@pytest.mark.parametrize("case", JSONPATH, ids=_ids(JSONPATH))
def test_jsonpath_pure_flow_case(case: dict[str, Any]) -> None:
    assert ORACLE is not None
    result = run(case["definition"], case["input"])
    ok, why = ORACLE.compare(case, {"ok": True, **result})
    assert ok, (
        f"{why}: got {result['status']} {result['output']} {result['error']} {result['cause']}"
    )
