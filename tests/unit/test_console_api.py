"""The console's graph endpoint over a counting Step Functions client."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from stepflow.console import api as console_api
from stepflow.console.api import GraphApi

EXECUTION = "arn:aws:states:us-east-1:000000000000:execution:m:run"
MACHINE = "arn:aws:states:us-east-1:000000000000:stateMachine:m"
DEFINITION = {
    "StartAt": "One",
    "States": {"One": {"Type": "Pass", "Next": "Two"}, "Two": {"Type": "Pass", "End": True}},
}


def _events() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [{"id": 1, "type": "ExecutionStarted"}]
    for name in ("One", "Two"):
        n = len(events)
        events.append(
            {
                "id": n + 1,
                "type": "PassStateEntered",
                "previousEventId": n,
                "stateEnteredEventDetails": {"name": name, "input": "{}"},
            }
        )
        events.append(
            {
                "id": n + 2,
                "type": "PassStateExited",
                "previousEventId": n + 1,
                "stateExitedEventDetails": {"name": name, "output": "{}"},
            }
        )
    events.append({"id": len(events) + 1, "type": "ExecutionSucceeded"})
    return events


class ClientError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.response = {"Error": {"Code": code, "Message": f"{code} <b>here</b>"}}


class FakeSfn:
    def __init__(self, definition: Any = DEFINITION, page: int = 2) -> None:
        self.calls: Counter[str] = Counter()
        self.definition = definition if isinstance(definition, str) else json.dumps(definition)
        self.events = _events()
        self.page = page

    def describe_execution(self, **query: str) -> dict[str, Any]:
        self.calls["describe_execution"] += 1
        if query["executionArn"] != EXECUTION:
            raise ClientError("ExecutionDoesNotExist")
        return {
            "executionArn": EXECUTION,
            "name": "run",
            "status": "SUCCEEDED",
            "input": '{"secret": 1}',
            "stateMachineArn": MACHINE,
        }

    def describe_state_machine_for_execution(self, **query: str) -> dict[str, Any]:
        self.calls["describe_state_machine_for_execution"] += 1
        return {"definition": self.definition}

    def describe_state_machine(self, **query: str) -> dict[str, Any]:
        self.calls["describe_state_machine"] += 1
        return {"definition": self.definition}

    def get_execution_history(self, **query: Any) -> dict[str, Any]:
        self.calls["get_execution_history"] += 1
        assert query["maxResults"] == 1000
        start = int(query.get("nextToken", "0"))
        end = start + self.page
        page: dict[str, Any] = {"events": self.events[start:end]}
        if end < len(self.events):
            page["nextToken"] = str(end)
        return page


def _get(api: GraphApi, query: str) -> tuple[int, Any]:
    reply = api.response("/console/api/graph" + query)
    assert reply.content_type == "application/json"
    return reply.status, json.loads(reply.body)


def test_an_execution_answers_its_graph_statuses_and_whole_paged_history() -> None:
    sfn = FakeSfn(page=2)
    made: list[int] = []
    api = GraphApi(lambda: made.append(1) or sfn)
    status, body = _get(api, f"?executionArn={EXECUTION}")
    assert status == 200
    assert [n["id"] for n in body["graph"]["nodes"]] == ["One", "Two"]
    assert body["statuses"] == {"One": "succeeded", "Two": "succeeded"}
    assert body["events"] == 6 and body["execution"]["status"] == "SUCCEEDED"
    assert "input" not in body["execution"]  # payloads go through the API, not here
    assert sfn.calls["get_execution_history"] == 3  # 6 events in pages of 2, each read once
    _get(api, f"?executionArn={EXECUTION}")
    assert made == [1]  # one client for every request


def test_a_state_machine_answers_its_graph_with_nothing_run() -> None:
    sfn = FakeSfn()
    status, body = _get(GraphApi(lambda: sfn), f"?stateMachineArn={MACHINE}")
    assert status == 200 and body["statuses"] == {"One": "not-run", "Two": "not-run"}
    assert sfn.calls == Counter({"describe_state_machine": 1})


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 400),
        ("?executionArn=", 400),
        (f"?executionArn={EXECUTION}&stateMachineArn={MACHINE}", 400),
        ("?executionArn=arn:aws:states:us-east-1:0:execution:m:gone", 404),
    ],
)
def test_bad_queries_are_refused(query: str, status: int) -> None:
    got, body = _get(GraphApi(FakeSfn), query)
    assert got == status and body["message"]


def test_other_paths_under_the_api_are_not_found() -> None:
    reply = GraphApi(FakeSfn).response("/console/api/graphs?executionArn=x")
    assert reply.status == 404


@pytest.mark.parametrize(
    "definition",
    ["not json", "[1, 2]", json.dumps({"States": {}}), json.dumps({"StartAt": "X", "States": 7})],
)
def test_a_definition_that_cannot_be_drawn_is_unprocessable(definition: str) -> None:
    status, body = _get(GraphApi(lambda: FakeSfn(definition)), f"?executionArn={EXECUTION}")
    assert status == 422 and body["message"]


def test_an_endless_history_is_read_no_further_than_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Endless(FakeSfn):
        def get_execution_history(self, **query: Any) -> dict[str, Any]:
            self.calls["get_execution_history"] += 1
            return {"events": [{"id": 1, "type": "ExecutionStarted"}] * 4, "nextToken": "more"}

    monkeypatch.setattr(console_api, "MAX_EVENTS", 10)
    sfn = Endless()
    status, body = _get(GraphApi(lambda: sfn), f"?executionArn={EXECUTION}")
    assert status == 200 and body["events"] == 10
    assert sfn.calls["get_execution_history"] == 3
