"""The local stack's moto finds the service behind a host name once, not per request.

GIVEN the local stack on moto (stepflow.local.moto_patches installed), WHEN
boto3 sends twenty DynamoDB and SQS requests, THEN moto's dispatcher lists its
service modules at most once per host name (it did on every request: a
directory scan and every service's URL patterns), and each request still
reaches its service.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.local import LocalStack

REQUESTS = 10


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0, handlers={}, pollers=0, runners=0) as running:
        yield running


def test_the_service_of_a_host_is_found_once(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    backends = importlib.import_module("moto.backends")
    listing = backends.list_of_moto_modules
    scans = [0]

    def counted() -> Any:
        scans[0] += 1
        return listing()

    monkeypatch.setattr(backends, "list_of_moto_modules", counted)
    dynamodb, sqs = stack.client("dynamodb"), stack.client("sqs")
    tables = [dynamodb.list_tables()["TableNames"] for _ in range(REQUESTS)]
    queues = [sqs.list_queues()["QueueUrls"] for _ in range(REQUESTS)]
    assert all("stepflow-local" in names for names in tables)
    assert all(any(url.endswith("/stepflow-transitions") for url in urls) for urls in queues)
    assert scans[0] <= 2, scans[0]  # at most the first request to each host
