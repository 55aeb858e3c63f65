"""Hostile paging of a map run's children through boto3 over HTTP (moto's DynamoDB)."""

from __future__ import annotations

from typing import Any

from stepflow.api.paging import write_token

from tests.api.conftest import Api
from tests.api.test_map_run_api import PREFIX, code_of, start_run


def test_children_page_once_each_and_a_token_of_another_listing_is_invalid(
    stack: tuple[Any, Api],
) -> None:
    sfn, api = stack
    _, run_a = start_run(sfn, api, "p1", [1, 2, 3])
    _, run_b = start_run(sfn, api, "pb", [4, 5])
    api.drain()
    seen: list[str] = []
    token: str | None = None
    for _ in range(10):
        page = sfn.list_executions(
            mapRunArn=run_a, maxResults=1, **({"nextToken": token} if token else {})
        )
        seen.extend(e["executionArn"] for e in page["executions"])
        token = page.get("nextToken")
        if token is None:
            break
    assert len(seen) == 3 == len(set(seen))
    first = sfn.list_executions(mapRunArn=run_a, maxResults=1)["nextToken"]
    assert code_of(sfn.list_executions, mapRunArn=run_b, nextToken=first) == "InvalidToken"
    machine = f"{PREFIX}:stateMachine:Batch"
    assert code_of(sfn.list_executions, stateMachineArn=machine, nextToken=first) == (
        "InvalidToken"
    )
    forged = write_token("ex", "not-a-key")["nextToken"]
    assert code_of(sfn.list_executions, mapRunArn=run_a, nextToken=forged) == "InvalidToken"
    assert code_of(sfn.list_map_runs, executionArn=run_a.replace(":mapRun:", ":execution:")) in (
        "ExecutionDoesNotExist",
        "InvalidArn",
    )
