"""Waiting for an execution of the local stack to finish, through the Step Functions API."""

from __future__ import annotations

import time
from typing import Any


def wait_for(sfn: Any, execution_arn: str, timeout: float = 30.0) -> dict[str, Any]:
    """DescribeExecution's answer once ``execution_arn`` is no longer RUNNING.

    Fails the test when it still runs after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.05)
    raise AssertionError(f"{execution_arn} still running after {timeout} s")
