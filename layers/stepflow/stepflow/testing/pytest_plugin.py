"""StepFlow's pytest plugin: fixtures for in-memory runs and for one local stack per test run.

Installed with StepFlow (the ``pytest11`` entry point ``stepflow``), or loaded with
``-p stepflow.testing.pytest_plugin``. Importing it is cheap: StepFlow's runtime,
boto3 and moto load only when a fixture is used.

Fixtures:

- ``stepflow_execute``: :func:`stepflow.testing.execute` (one execution to its end,
  in memory, on a virtual clock).
- ``stepflow_env``: a fresh :class:`stepflow.testing.WorkflowEnvironment` per test.
- ``stepflow_local``: the local stack (:class:`stepflow.local.LocalStack`, the Step
  Functions API on moto), started on the first test that asks for it, on a free port,
  once per test run, and stopped at its end. Its handlers and mock config come from
  the ``stepflow_local_handlers`` and ``stepflow_mock_config`` fixtures (override them
  in a ``conftest.py``, session-scoped).
- ``stepflow_client``: a boto3 Step Functions client for that stack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from stepflow.local import LocalStack
    from stepflow.testing import ExecutionResult, WorkflowEnvironment

__all__ = [
    "stepflow_client",
    "stepflow_env",
    "stepflow_execute",
    "stepflow_local",
    "stepflow_local_handlers",
    "stepflow_mock_config",
]


@pytest.fixture
def stepflow_execute() -> Callable[..., ExecutionResult]:
    """:func:`stepflow.testing.execute`: ``stepflow_execute(definition, input, handlers=...)``."""
    from stepflow.testing import execute

    return execute


@pytest.fixture
def stepflow_env() -> WorkflowEnvironment:
    """A fresh in-memory :class:`~stepflow.testing.WorkflowEnvironment` for one test."""
    from stepflow.testing import WorkflowEnvironment

    return WorkflowEnvironment()


@pytest.fixture(scope="session")
def stepflow_local_handlers() -> Mapping[str, Callable[[Any], Any]]:
    """The handlers the session's local stack binds (override: a session fixture)."""
    return {}


@pytest.fixture(scope="session")
def stepflow_mock_config() -> str | Mapping[str, Any] | None:
    """The session's local stack's mock config, a path or its object (override to set)."""
    return None


@pytest.fixture(scope="session")
def stepflow_local(
    stepflow_local_handlers: Mapping[str, Callable[[Any], Any]],
    stepflow_mock_config: str | Mapping[str, Any] | None,
) -> Iterator[LocalStack]:
    """The local stack on 127.0.0.1 and a free port, started once, stopped after the run.

    It prints warnings and errors only (``verbosity=0``: no access log, no metrics).
    """
    from stepflow.local import LocalStack

    stack = LocalStack(
        "127.0.0.1",
        0,
        None,
        stepflow_local_handlers,
        mock_config=stepflow_mock_config,
        verbosity=0,
    )
    with stack:
        yield stack


@pytest.fixture(scope="session")
def stepflow_client(stepflow_local: LocalStack) -> Any:
    """A boto3 Step Functions client for the session's local stack.

    Host prefixes are off, so StartSyncExecution reaches the local endpoint too.
    """
    import boto3
    from botocore.config import Config

    return boto3.client(
        "stepfunctions",
        endpoint_url=stepflow_local.url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(inject_host_prefix=False),
    )
