"""The integrations StepFlow ships, one module each: the default registry."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from stepflow.integrations import aws_sdk, dynamodb, events, lambda_, sns, sqs
from stepflow.integrations.base import Integration
from stepflow.integrations.registry import Registry

MODULES: tuple[Sequence[Integration], ...] = (
    # One line per integration module: its INTEGRATIONS tuple.
    lambda_.INTEGRATIONS,
    sqs.INTEGRATIONS,
    sns.INTEGRATIONS,
    events.INTEGRATIONS,
    dynamodb.INTEGRATIONS,
    aws_sdk.INTEGRATIONS,
)


@lru_cache(maxsize=1)
def default_registry() -> Registry:
    """Every integration StepFlow ships, registered by service."""
    registry = Registry()
    for integrations in MODULES:
        for integration in integrations:
            registry.register(integration)
    return registry
