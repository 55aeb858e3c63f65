"""`LocalStack(dynamodb_endpoint=...)` (`--dynamodb-endpoint`): the log table elsewhere.

The LocalStack tier sends DynamoDB to DynamoDB Local and the rest to LocalStack.
Here a second moto server, in its own process (moto's state is per process),
stands in for DynamoDB Local: the table and the execution's items must be there,
and nowhere on the main endpoint.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from stepflow.local import LocalStack, free_port
from stepflow.local.stack import TABLE

from tests.e2e.waiting import wait_for

pytest.importorskip("moto")
CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


def _dynamodb(endpoint: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", **CREDENTIALS)


@pytest.fixture
def other_moto() -> Iterator[str]:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = _dynamodb(endpoint)
        deadline = time.monotonic() + 60
        while True:
            try:
                client.list_tables()
                break
            except Exception:  # still starting
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_the_log_table_lives_on_the_dynamodb_endpoint(other_moto: str) -> None:
    definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    with LocalStack(port=0, dynamodb_endpoint=other_moto) as stack:
        sfn = stack.stepfunctions()
        arn = sfn.create_state_machine(
            name=f"split-{uuid.uuid4().hex}",
            definition=json.dumps(definition),
            roleArn="arn:aws:iam::000000000000:role/x",
        )["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=arn, input='{"a": 1}')["executionArn"]
        assert wait_for(sfn, execution, timeout=60)["status"] == "SUCCEEDED"
        main = stack.aws_endpoint  # SQS, S3, ... and, without the option, DynamoDB
        assert main != other_moto
        # moto's state is per process: other tests' stacks may have made the table on main.
        assert _items_mentioning(main, execution) == 0
        assert _items_mentioning(other_moto, execution) > 0


def _items_mentioning(endpoint: str, text: str) -> int:
    """How many items of the log table at ``endpoint`` contain ``text`` (0 without a table)."""
    client = _dynamodb(endpoint)
    if TABLE not in client.list_tables()["TableNames"]:
        return 0
    pages = client.get_paginator("scan").paginate(TableName=TABLE)
    return sum(text in json.dumps(item, default=str) for page in pages for item in page["Items"])
