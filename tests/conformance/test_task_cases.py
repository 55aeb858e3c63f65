"""The 57 AWS-recorded dev Task cases of this issue, each on moto as its test set it up.

Skipped when ../shared/conformance is absent (as in a user's clone). A case whose
integration is not registered yet is an expected failure (``xfail``, not strict: it
passes once the integration lands); so is a case in :data:`KNOWN_FAILURES`, with its
reason (docs/conformance.md lists them). Everything else must match AWS: the outcome
by the oracle's ``compare`` and the history's event types by ``history_matches``.
``bench/conformance_tasks.py`` prints the same score.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conformance.task_cases import OUT_OF_SCOPE, SPECS, calls, key, run_case
from tests.conformance.task_harness import score, unregistered
from tests.conformance.task_standins import ApiStandIn, api_stand_in
from tests.conformance.test_conformance import ALL, CASES, ORACLE

pytestmark = pytest.mark.conformance

TASK_CASES = [c for c in ALL if c["needs"]]
IN_SCOPE = [c for c in TASK_CASES if key(c) in SPECS]

PASS_RATE = 0.85
"""The issue's acceptance: at least this share of the 57 cases pass."""

KNOWN_FAILURES: dict[str, str] = {}
"""Cases (keys of SPECS) that fail for a documented reason (docs/conformance.md)."""

_RESULTS: dict[str, dict[str, Any]] = {}


def _marks(case: dict[str, Any]) -> list[pytest.MarkDecorator]:
    missing = unregistered(calls(case))
    if missing:
        reason = "integration not registered yet: " + "; ".join(missing)
        return [pytest.mark.xfail(strict=False, reason=reason)]
    if key(case) in KNOWN_FAILURES:
        return [pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[key(case)])]
    return []


@pytest.fixture(scope="module")
def api() -> Iterator[ApiStandIn]:
    """The API Gateway stand-in, one server for the module."""
    with api_stand_in() as server:
        yield server


def _result(case: dict[str, Any], api: ApiStandIn) -> dict[str, Any]:
    if key(case) not in _RESULTS:
        _RESULTS[key(case)] = run_case(case, api)
    return _RESULTS[key(case)]


@pytest.mark.skipif(not ALL, reason=f"{CASES} is absent (as in a user's clone)")
def test_the_71_task_cases_are_the_57_in_scope_and_the_14_of_the_next_issue() -> None:
    """Every recorded Task case is either run here or listed with why not, never both."""
    keys = {key(c) for c in TASK_CASES}
    assert (len(TASK_CASES), len(IN_SCOPE), len(OUT_OF_SCOPE)) == (71, 57, 14)
    assert keys == set(SPECS) | set(OUT_OF_SCOPE)
    assert not set(SPECS) & set(OUT_OF_SCOPE)


@pytest.mark.skipif(ORACLE is None, reason="../shared/conformance is absent (as in a user's clone)")
@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=_marks(c), id=key(c).split("::", 1)[1]) for c in IN_SCOPE],
)
def test_task_case_matches_aws(case: dict[str, Any], api: ApiStandIn) -> None:
    """The case's outcome and history event types match what AWS recorded."""
    ok, why = score(ORACLE, case, _result(case, api))
    assert ok, why


@pytest.mark.skipif(ORACLE is None, reason="../shared/conformance is absent (as in a user's clone)")
def test_at_least_85_percent_of_the_57_pass(api: ApiStandIn) -> None:
    """The acceptance figure, once every integration the cases reach is registered."""
    waiting = [key(c) for c in IN_SCOPE if unregistered(calls(c))]
    if waiting:
        pytest.skip(f"{len(waiting)} of the 57 cases reach integrations not registered yet")
    passed = sum(score(ORACLE, c, _result(c, api))[0] for c in IN_SCOPE)
    assert passed >= math.ceil(PASS_RATE * len(IN_SCOPE)), f"{passed}/{len(IN_SCOPE)} pass"
