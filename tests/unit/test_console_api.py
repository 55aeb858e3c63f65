"""The console's graph endpoint: it computes from what it is sent and reads nothing."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from stepflow.console import api as console_api
from stepflow.console.api import GraphApi
from stepflow.console.http import json_response

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
                "stateEnteredEventDetails": {"name": name},
            }
        )
        events.append(
            {
                "id": n + 2,
                "type": "PassStateExited",
                "previousEventId": n + 1,
                "stateExitedEventDetails": {"name": name},
            }
        )
    events.append({"id": len(events) + 1, "type": "ExecutionSucceeded"})
    return events


def _post(request: Any, path: str = "/console/api/graph") -> tuple[int, Any]:
    body = request if isinstance(request, bytes) else json.dumps(request).encode()
    reply = GraphApi().response("POST", path, body)
    assert reply.content_type == "application/json"
    return reply.status, json.loads(reply.body)


def test_the_statuses_are_computed_from_the_events_sent() -> None:
    status, body = _post({"definition": json.dumps(DEFINITION), "events": _events()[:3]})
    assert status == 200
    assert [n["id"] for n in body["graph"]["nodes"]] == ["One", "Two"]
    assert body["statuses"] == {"One": "succeeded", "Two": "not-run"}  # Two not entered yet
    _, whole = _post({"definition": DEFINITION, "events": _events()})
    assert whole["statuses"] == {"One": "succeeded", "Two": "succeeded"}


def test_a_definition_alone_answers_its_graph_with_nothing_run() -> None:
    status, body = _post({"definition": json.dumps(DEFINITION)})
    assert status == 200 and body["statuses"] == {"One": "not-run", "Two": "not-run"}


def test_the_endpoint_holds_no_client_and_takes_no_arn() -> None:
    # the old GET read an execution with the server's own client, past --access-policy
    reply = GraphApi().response("GET", "/console/api/graph?executionArn=arn:x", b"")
    assert reply.status == 405 and reply.headers == {"Allow": "POST"}
    assert not hasattr(GraphApi(), "client")


@pytest.mark.parametrize(
    "request_body",
    [
        b"not json",
        b"[1]",
        {"definition": "not json"},
        {"definition": [1, 2]},
        {"definition": {"States": {}}},
        {"definition": {"StartAt": "X", "States": 7}},
        {"definition": DEFINITION, "events": {"id": 1}},
        b'{"definition": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
)
def test_what_cannot_be_drawn_is_unprocessable(request_body: Any) -> None:
    status, body = _post(request_body)
    assert status == 422 and body["message"]


def test_hostile_events_are_skipped_not_fatal() -> None:
    events: list[Any] = [7, None, {"id": "x", "type": 1}, {"id": 2, "type": "PassStateEntered"}]
    status, body = _post({"definition": DEFINITION, "events": events})
    assert status == 200 and set(body["statuses"]) <= {"One", "Two", "None"}


def test_too_many_events_are_refused_not_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console_api, "MAX_EVENTS", 5)
    status, body = _post({"definition": DEFINITION, "events": _events()})
    assert status == 422 and "more than 5 events" in body["message"]


def test_other_paths_under_the_api_are_not_found() -> None:
    assert GraphApi().response("POST", "/console/api/graphs", b"{}").status == 404


def test_an_internal_error_is_logged_not_sent(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("http://internal.example:9000/secret")

    monkeypatch.setattr(console_api, "node_statuses", broken)
    with caplog.at_level(logging.ERROR, logger="stepflow.console.api"):
        status, body = _post({"definition": DEFINITION, "events": []})
    assert status == 500 and "internal.example" not in json.dumps(body)
    assert "internal.example" in caplog.text


def test_dates_are_epoch_seconds_as_the_api_sends() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 500_000, tzinfo=UTC)
    assert json.loads(json_response(200, {"at": moment}).body) == {"at": moment.timestamp()}
    with pytest.raises(TypeError):
        json_response(200, {"x": object()})
