"""boto3 clients, created on demand (never at import time)."""

from __future__ import annotations

from typing import Any

import boto3


def client(service: str, *, region: str = "us-east-1", endpoint_url: str | None = None) -> Any:
    """A boto3 client for ``service`` (``endpoint_url`` for LocalStack or moto server)."""
    return boto3.client(service, region_name=region, endpoint_url=endpoint_url)
