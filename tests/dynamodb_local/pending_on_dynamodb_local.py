"""The head-carried commit's and create's tests on DynamoDB Local.

tests/integration/test_log_pending.py, tests/integration/test_create_carried.py and
tests/integration/test_group_claim_copy.py.

The tests are imported, not copied; only the ``aws`` fixture is replaced by a client of
the DynamoDB Local server that ``conftest.py`` starts, so the conditions that guard the
pending events (a binary attribute compared whole, numbers read back trimmed) run on
Amazon's engine. Run by ``test_dynamodb_local.py`` in its private network namespace.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.integration.test_create_carried import *  # noqa: F403  (the tests)
from tests.integration.test_group_claim_copy import *  # noqa: F403  (the tests)
from tests.integration.test_log_pending import *  # noqa: F403  (the tests)


@pytest.fixture(scope="module")  # type: ignore[no-redef]  # replaces the moto fixture
def aws(local_endpoint: str) -> Iterator[Any]:
    """A client of DynamoDB Local (see contract_on_dynamodb_local.aws)."""
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
            env.delenv(name, raising=False)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            env.setenv(name, "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_ENDPOINT_URL_DYNAMODB", local_endpoint)
        with mock_aws():
            client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=local_endpoint)
            server = client.list_tables()["ResponseMetadata"]["HTTPHeaders"].get("server", "")
            assert server.startswith("Jetty"), "moto answered, not DynamoDB Local"
            yield client
