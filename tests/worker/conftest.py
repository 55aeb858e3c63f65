from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.moto_env import offline_aws


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with offline_aws(monkeypatch):
        yield boto3.client("sqs", region_name="us-east-1")
