"""moto in-process with fake credentials: the AWS tests' common set-up."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

REGION = "us-east-1"

_OVERRIDES = (
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_SQS",
)


@contextmanager
def offline_aws(env: pytest.MonkeyPatch) -> Iterator[None]:
    """Inside: every boto3 client talks to moto (no profile, no endpoint override, no network)."""
    moto = pytest.importorskip("moto")
    for name in _OVERRIDES:
        env.delenv(name, raising=False)
    env.setenv("AWS_ACCESS_KEY_ID", "testing")
    env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    env.setenv("AWS_SESSION_TOKEN", "testing")
    env.setenv("AWS_DEFAULT_REGION", REGION)
    with moto.mock_aws():
        yield
