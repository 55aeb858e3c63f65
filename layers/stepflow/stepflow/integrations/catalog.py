"""The integrations StepFlow ships, one module each: the default registry."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from stepflow.integrations import (
    apigateway,
    athena,
    aws_sdk,
    batch,
    bedrock,
    dynamodb,
    ecs,
    events,
    glue,
    http,
    lambda_,
    sns,
    sqs,
    states,
    stepflow_tasks,
)
from stepflow.integrations.base import Integration
from stepflow.integrations.http_port import HttpPort
from stepflow.integrations.polled import PolledIntegration, PollSchedule
from stepflow.integrations.registry import Registry
from stepflow.runtime.nested import ExecutionStarter

MODULES: tuple[Sequence[Integration], ...] = (
    # One line per integration module: its INTEGRATIONS tuple.
    lambda_.INTEGRATIONS,
    sqs.INTEGRATIONS,
    sns.INTEGRATIONS,
    events.INTEGRATIONS,
    dynamodb.INTEGRATIONS,
    aws_sdk.INTEGRATIONS,
    apigateway.INTEGRATIONS,
    http.INTEGRATIONS,
    bedrock.INTEGRATIONS,
    athena.INTEGRATIONS,
    glue.INTEGRATIONS,
    batch.INTEGRATIONS,
    ecs.INTEGRATIONS,
    states.INTEGRATIONS,
    stepflow_tasks.INTEGRATIONS,
)


@lru_cache(maxsize=1)
def default_registry() -> Registry:
    """Every integration StepFlow ships, registered by service."""
    registry = Registry()
    for integrations in MODULES:
        for integration in integrations:
            registry.register(integration)
    return registry


def with_http(registry: Registry, port: HttpPort) -> Registry:
    """A copy of ``registry`` whose HTTP integrations send through ``port``.

    ``stepflow local`` passes a port that refuses the stack's own endpoints.
    """
    copy = Registry(dict(registry.integrations))
    copy.register(apigateway.ApiGatewayInvoke(port))
    copy.register(http.HttpInvoke(port))
    return copy


def with_starter(registry: Registry, starter: ExecutionStarter) -> Registry:
    """A copy of ``registry`` whose ``states:startExecution`` tasks start through ``starter``."""
    copy = Registry(dict(registry.integrations))
    copy.register(states.StatesStartExecution(starter))
    return copy


def with_poll_schedule(registry: Registry, schedule: PollSchedule) -> Registry:
    """A copy of ``registry`` whose polled ``.sync`` jobs are polled on ``schedule``."""
    copy = Registry(dict(registry.integrations))
    for integration in registry.integrations.values():
        if isinstance(integration, PolledIntegration):
            copy.register(PolledIntegration(integration.calls, integration.jobs, schedule))
    return copy
