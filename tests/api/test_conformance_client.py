"""The AWS-recorded pure-flow conformance cases through the real boto3 client and the API.

Each case becomes CreateStateMachine + StartExecution over HTTP; the stepper
runs the execution to its end; DescribeExecution and GetExecutionHistory (all
pages) are compared with the oracle's own functions. Skipped where
``../shared/conformance`` is absent.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
import stepflow
from botocore.config import Config
from botocore.exceptions import ClientError
from stepflow.api import lambda_handler
from stepflow.runtime import InMemoryLog
from stepflow.runtime.registry import InMemoryRegistry

from tests.api.conftest import BOTO3_ENV as ENV
from tests.api.conftest import ROLE, Api, make_api
from tests.api.http_server import serve
from tests.conformance.test_conformance import ORACLE, PURE, PURE_PARAMS, _ids

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.skipif(ORACLE is None, reason="../shared/conformance is absent"),
]


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[Any, Api]]:
    api = make_api(InMemoryLog(), InMemoryRegistry())
    lambda_handler.configure(api.service)
    try:
        with mock.patch.dict(os.environ, ENV), serve() as endpoint:
            config = Config(retries={"max_attempts": 1})
            yield stepflow.client(endpoint, region="eu-west-1", config=config), api
    finally:
        lambda_handler.configure(None)


def _run(sfn: Any, api: Api, name: str, case: dict[str, Any]) -> dict[str, Any]:
    try:
        arn = sfn.create_state_machine(
            name=name, definition=json.dumps(case["definition"]), roleArn=ROLE
        )["stateMachineArn"]
    except ClientError as exc:  # as the in-memory runner reports an invalid definition
        message = exc.response["Error"]["Message"]
        return {"status": "FAILED", "error": "States.Runtime", "cause": message, "output": None}
    started = sfn.start_execution(
        stateMachineArn=arn, name="conformance", input=json.dumps(case["input"])
    )
    api.drain()
    described = sfn.describe_execution(executionArn=started["executionArn"])
    pages = sfn.get_paginator("get_execution_history").paginate(
        executionArn=started["executionArn"], PaginationConfig={"PageSize": 50}
    )
    history = [event for page in pages for event in page["events"]]
    return {
        "status": described["status"],
        "output": described.get("output"),
        "error": described.get("error"),
        "cause": described.get("cause"),
        "history_types": [event["type"] for event in history],
    }


@pytest.mark.parametrize("case", PURE_PARAMS, ids=_ids(PURE))
def test_pure_flow_case_through_boto3(stack: tuple[Any, Api], case: dict[str, Any]) -> None:
    assert ORACLE is not None
    sfn, api = stack
    name = "c-" + hashlib.sha256(case["id"].encode()).hexdigest()[:32]
    reported = {"ok": True, **_run(sfn, api, name, case)}
    ok, why = ORACLE.compare(case, reported)
    assert ok, f"{why}: got {reported}"
    assert ORACLE.history_matches(case, reported), reported["history_types"]
