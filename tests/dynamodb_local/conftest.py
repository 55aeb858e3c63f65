"""The DynamoDB Local run: one server for the session, no in-memory cases, known differences."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dynamodb_local.server import DynamoDBLocalError, dynamodb_local

INNER_MODULE = "contract_on_dynamodb_local.py"

KNOWN_DIFFERENCES: dict[str, str] = {}
"""Test name (without parameters) -> why DynamoDB Local rejects what moto accepts."""


@pytest.fixture(scope="session")
def local_endpoint() -> Iterator[str]:
    """DynamoDB Local's URL, started once (only inside the private network namespace)."""
    try:
        with dynamodb_local() as endpoint:
            yield endpoint
    except DynamoDBLocalError as exc:  # only raised while starting: a clear failure
        pytest.fail(str(exc), pytrace=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the InMemoryLog cases (the normal run has them) and xfail known differences."""
    kept, dropped = [], []
    for item in items:
        if item.path.name != INNER_MODULE:
            kept.append(item)
            continue
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("log") == "memory":
            dropped.append(item)
            continue
        reason = KNOWN_DIFFERENCES.get(item.name.partition("[")[0])
        if reason:
            item.add_marker(pytest.mark.xfail(strict=True, reason=reason))
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
