"""The integration tests' fixture: moto in process, its clients by service name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.moto_env import REGION, offline_aws


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto's clients by service name (the tests' view of AWS)."""
    with offline_aws(monkeypatch):
        yield {
            name: boto3.client(name, region_name=REGION)
            for name in ("sns", "sqs", "events", "dynamodb")
        }
