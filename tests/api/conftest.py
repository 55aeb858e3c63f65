"""Fixtures of the API tests: the service on in-memory ports, a clock, task handlers."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")

import pytest
from stepflow.api import Scope, StepFunctionsService
from stepflow.engine import RunTask
from stepflow.runtime import CoordinationLog, InMemoryBus, InMemoryLog
from stepflow.runtime.outcome import TaskOutcome
from stepflow.runtime.registry import InMemoryRegistry, StateMachineRegistry
from stepflow.testing.handlers import run_handler


@pytest.fixture(autouse=True)
def _quiet_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    """No EMF lines from the API handler here; set per test so other suites keep theirs."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")


BOTO3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "eu-west-1",
}
"""What the boto3 client over HTTP and moto's DynamoDB run with."""
SCOPE = Scope("eu-west-1", "111122223333")
ROLE = "arn:aws:iam::111122223333:role/StepFlow"
SM_PREFIX = "arn:aws:states:eu-west-1:111122223333:stateMachine:"
FN = "arn:aws:lambda:eu-west-1:111122223333:function:"
HANDLERS: dict[str, Callable[[Any], Any]] = {
    "double": lambda value: {"n": value["n"] * 2},
    "boom": lambda value: (_ for _ in ()).throw(ValueError("boom")),
}
PASS = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
DOUBLE = json.dumps(
    {
        "StartAt": "Wait",
        "States": {
            "Wait": {"Type": "Wait", "Seconds": 3600, "Next": "Double"},
            "Double": {"Type": "Task", "Resource": FN + "double", "End": True},
        },
    }
)


def invoke(body: dict[str, Any]) -> TaskOutcome:
    command = RunTask(body["task_id"], body["resource"], body["input"], body["state_name"])
    return run_handler(HANDLERS, command)


@dataclass
class Api:
    """A service and the ports it runs on; ``bus.now`` is the service's clock."""

    service: StepFunctionsService
    log: CoordinationLog
    bus: InMemoryBus
    registry: StateMachineRegistry

    def __call__(self, operation: str, **params: Any) -> dict[str, Any]:
        return self.service.call(operation, params)

    def drain(self) -> None:
        """Deliver every queued message (the virtual clock jumps over waits)."""
        while batch := self.bus.receive_batch(10):
            failed = {id(m) for m, _ in self.service.stepper.handle_batch(batch)}
            for message in batch:
                if id(message) not in failed:
                    self.bus.ack(message)

    def machine(self, name: str = "M", definition: str = PASS, **extra: Any) -> str:
        result = self("CreateStateMachine", name=name, definition=definition, roleArn=ROLE, **extra)
        return str(result["stateMachineArn"])


def make_api(log: CoordinationLog, registry: StateMachineRegistry) -> Api:
    bus = InMemoryBus(1_700_000_000.0)
    service = StepFunctionsService(
        log=log, bus=bus, registry=registry, invoker=invoke, scope=SCOPE, clock=lambda: bus.now
    )
    return Api(service, log, bus, registry)


@pytest.fixture
def api() -> Api:
    return make_api(InMemoryLog(), InMemoryRegistry())


@contextmanager
def boto3_stack() -> Iterator[tuple[Any, Api]]:
    """The real boto3 Step Functions client, over HTTP to the API Lambda, and its service.

    The service keeps its log and registry in DynamoDB on moto; the test drives the
    stepper (``Api.drain``: an in-memory bus on a virtual clock).
    """
    import boto3
    import stepflow
    from botocore.config import Config
    from moto import mock_aws
    from stepflow.api import lambda_handler
    from stepflow.aws import DynamoDBLog, create_table
    from stepflow.aws.dynamodb_registry import DynamoDBRegistry

    from tests.api.http_server import serve

    with mock.patch.dict(os.environ, BOTO3_ENV), mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
        create_table(dynamodb, "log")
        api = make_api(
            DynamoDBLog("log", client=dynamodb), DynamoDBRegistry("log", client=dynamodb)
        )
        lambda_handler.configure(api.service)
        try:
            with serve() as endpoint:
                config = Config(retries={"max_attempts": 1})
                yield stepflow.client(endpoint, region="eu-west-1", config=config), api
        finally:
            lambda_handler.configure(None)


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[Any, Api]]:
    """:func:`boto3_stack`, one per test module."""
    with boto3_stack() as made:
        yield made
