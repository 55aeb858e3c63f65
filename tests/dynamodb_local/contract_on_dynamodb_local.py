"""The CoordinationLog contract suite, run against DynamoDBLog on Amazon's DynamoDB Local.

The test functions and fixtures are those of
``tests/integration/test_log_contract.py`` (imported, not copied); only the
``aws`` fixture is replaced, by a client of the DynamoDB Local server that
``conftest.py`` starts, so every DynamoDB call goes to the real DynamoDB engine
instead of moto. ``conftest.py`` also drops the in-memory cases and marks the
known differences.

Not collected by the normal run (no ``test_`` prefix): DynamoDB Local listens on
every interface, so ``test_dynamodb_local.py`` runs this module in a
loopback-only network namespace, where the JVM is started.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.integration.test_log_contract import *  # noqa: F403  (the contract's tests)


@pytest.fixture(scope="module")  # type: ignore[no-redef]  # replaces the moto fixture
def aws(local_endpoint: str) -> Iterator[Any]:
    """A client of DynamoDB Local; the environment points boto3 at it too.

    Other services (S3 for the payload store) stay on moto: ``mock_aws`` only
    intercepts AWS hostnames, so requests to the local endpoint pass through.
    """
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
            env.delenv(name, raising=False)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_SESSION_TOKEN", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_ENDPOINT_URL_DYNAMODB", local_endpoint)
        with mock_aws():
            client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=local_endpoint)
            headers = client.list_tables()["ResponseMetadata"]["HTTPHeaders"]
            assert headers.get("server", "").startswith("Jetty"), (
                "moto answered, not DynamoDB Local"
            )
            yield client
