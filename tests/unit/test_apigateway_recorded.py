"""The AWS-recorded apigateway:invoke dev cases, against a local stand-in of their test API.

The stand-in (tests/unit/http_target.py) answers as the recorded API does:
``id_func`` echoes the request body, an unknown path is API Gateway's 403
``Missing Authentication Token``. The recorded outputs carry placeholders
(API ids, dates), so status, error and cause are compared, and the output's
body, status code and text where the case records them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.http_target import HttpTarget, http_target
from tests.unit.test_apigateway_integration import run

CASES = Path(__file__).resolve().parents[2].parent / "shared" / "conformance"
FILE = CASES / "aws-recorded-dev.jsonl"


def _cases() -> list[dict[str, Any]]:
    if not FILE.exists():
        return []
    found = []
    for line in FILE.read_text().splitlines():
        case = json.loads(line)
        if case["needs"] == ["arn:aws:states:::apigateway:invoke"]:
            found.append(case)
    return found


CASE_LIST = _cases()


@pytest.fixture(scope="module")
def target() -> Iterator[HttpTarget]:
    with http_target() as running:
        yield running


@pytest.mark.skipif(not CASE_LIST, reason="../shared/conformance is absent")
@pytest.mark.parametrize("case", CASE_LIST, ids=[c["id"].split("::")[-1] for c in CASE_LIST])
def test_recorded_case(case: dict[str, Any], target: HttpTarget) -> None:
    payload = {**case["input"], "ApiEndpoint": target.url}
    before = len(target.received)
    result = run(case["definition"], payload)
    expected = case["expected"]
    assert result.status == expected["status"], result.cause
    if expected["status"] == "FAILED":
        assert result.error == expected["error"]
        if expected["error"] == "States.Runtime":
            # AWS's cause starts with the state and event id, then the parameters' text.
            tail = expected["cause"].split("could not be used to start the Task: ")[1]
            assert result.cause.endswith(tail)
            assert len(target.received) == before  # refused before any request
        else:
            assert result.cause == expected["cause"]
        return
    out, recorded = result.result, expected["output"]
    assert out["StatusCode"] == recorded["StatusCode"]
    assert out["StatusText"] == recorded["StatusText"]
    assert set(out["Headers"]) >= {"Content-Type", "Content-Length"}
    if "queryStringParameters" not in json.dumps(recorded["ResponseBody"]):
        # (the query case's API maps the request through a template we do not emulate)
        assert out["ResponseBody"] == recorded["ResponseBody"]
        assert out["Headers"]["Content-Length"] == recorded["Headers"]["Content-Length"]
    assert len(target.received) == before + 1


def test_all_eight_cases_are_found() -> None:
    if not FILE.exists():
        pytest.skip("../shared/conformance is absent")
    assert len(CASE_LIST) == 8
