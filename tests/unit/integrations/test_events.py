"""``events:putEvents`` against moto in process: one event per entry at the rule's target."""

from __future__ import annotations

import json
import re
from typing import Any

from stepflow.integrations import default_registry
from stepflow.testing import WorkflowEnvironment

from tests.unit.integrations.helpers import (
    EXECUTION,
    MACHINE,
    TOKEN,
    body,
    definition,
    drain,
    fixed,
    invoker,
    queue,
)

PUT = "arn:aws:states:::events:putEvents"
WAIT = PUT + ".waitForTaskToken"


def _rule(aws: dict[str, Any], source: str = "orders", bus: str = "default") -> str:
    """A rule on ``bus`` matching ``source``, its target an SQS queue: the queue's URL."""
    url, arn = queue(aws, f"{bus}-{source}-events")
    pattern = json.dumps({"source": [source]})
    aws["events"].put_rule(Name=f"{source}-rule", EventPattern=pattern, EventBusName=bus)
    aws["events"].put_targets(
        Rule=f"{source}-rule", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}]
    )
    return url


def _events(aws: dict[str, Any], url: str) -> list[dict[str, Any]]:
    return [json.loads(m["Body"]) for m in drain(aws, url)]


def test_one_entry_is_one_event_at_the_rules_target(aws: Any) -> None:
    url = _rule(aws)
    entry = {"Source": "orders", "DetailType": "OrderPlaced", "Detail": {"id": 7}}
    outcome = invoker(fixed(aws))(body(PUT, {"Entries": [entry]}))
    assert outcome.ok, outcome
    assert set(outcome.output) == {"Entries", "FailedEntryCount"}
    assert outcome.output["FailedEntryCount"] == 0
    (event_id,) = [e["EventId"] for e in outcome.output["Entries"]]
    (event,) = _events(aws, url)
    assert event["id"] == event_id
    assert event["detail"] == {"id": 7}  # an object Detail went as JSON text
    assert event["detail-type"] == "OrderPlaced"
    assert event["resources"] == [EXECUTION, MACHINE]


def test_a_string_detail_passes_as_is_and_resources_keep_the_users_first(aws: Any) -> None:
    url = _rule(aws)
    entry = {
        "Source": "orders",
        "DetailType": "d",
        "Detail": '{"Message": "HelloWorld0"}',
        "Resources": ["arn:aws:sqs:us-east-1:123456789012:mine"],
    }
    assert invoker(fixed(aws))(body(PUT, {"Entries": [entry, {**entry}]})).ok
    events = _events(aws, url)
    assert [e["detail"] for e in events] == [{"Message": "HelloWorld0"}] * 2
    assert events[0]["resources"] == ["arn:aws:sqs:us-east-1:123456789012:mine", EXECUTION, MACHINE]


def test_a_failed_entry_fails_the_task_with_the_response_as_cause(aws: Any) -> None:
    url = _rule(aws)
    entries = [
        {"Detail": {"Message": "HelloWorld1"}, "DetailType": "d", "Source": "orders"},
        {"Detail": {"Message": "HelloWorld"}, "DetailType": "d"},
    ]
    outcome = invoker(fixed(aws))(body(PUT, {"Entries": entries}))
    assert outcome.error == "EventBridge.FailedEntry"
    cause = json.loads(outcome.cause or "")
    assert cause["FailedEntryCount"] == 1
    assert cause["Entries"][1] == {
        "ErrorCode": "InvalidArgument",
        "ErrorMessage": "Parameter Source is not valid. Reason: Source is a required argument.",
    }
    # AWS's formatting of the cause (the dev case test_put_events_no_source)
    assert re.fullmatch(
        r'\{"Entries": \[\{"EventId": "[0-9a-f-]{36}"\}, \{"ErrorCode": "InvalidArgument", '
        r'"ErrorMessage": "[^"]+"\}\], "FailedEntryCount": 1\}',
        outcome.cause or "",
    )
    assert len(_events(aws, url)) == 1  # the valid entry was still sent, as on AWS


def test_a_custom_bus_receives_its_events_and_a_missing_bus_fails(aws: Any) -> None:
    aws["events"].create_event_bus(Name="shop")
    url = _rule(aws, bus="shop")
    run = invoker(fixed(aws))
    entry = {"Source": "orders", "DetailType": "d", "Detail": {}, "EventBusName": "shop"}
    assert run(body(PUT, {"Entries": [entry]})).ok
    assert len(_events(aws, url)) == 1
    missing = run(body(PUT, {"Entries": [{**entry, "EventBusName": "nope"}]}))
    assert missing.error in ("EventBridge.ResourceNotFoundException", "EventBridge.FailedEntry")
    assert _events(aws, url) == []


def test_missing_null_or_mistyped_entries_fail_without_an_event(aws: Any) -> None:
    url = _rule(aws)
    run = invoker(fixed(aws))
    for parameters in ({}, {"Entries": None}):
        outcome = run(body(PUT, parameters))
        assert outcome.error == "EventBridge.AmazonEventBridgeException"
        assert (outcome.cause or "").startswith(
            "1 validation error detected: Value null at 'entries' failed to satisfy constraint"
        )
        assert "Error Code: ValidationException;" in (outcome.cause or "")
    for entries in ("text", ["text"], [{"Source": 5, "DetailType": "d", "Detail": "{}"}]):
        assert run(body(PUT, {"Entries": entries})).error == "States.Runtime"
    assert run(body(PUT, [1, 2])).error == "States.Runtime"
    assert _events(aws, url) == []


def test_wait_for_task_token_sends_the_token_in_the_event(aws: Any) -> None:
    url = _rule(aws)
    entry = {"Source": "orders", "DetailType": "d", "Detail": {"TaskToken": TOKEN}}
    outcome = invoker(fixed(aws))(body(WAIT, {"Entries": [entry]}))
    assert outcome.ok and outcome.output["FailedEntryCount"] == 0
    (event,) = _events(aws, url)
    assert event["detail"] == {"TaskToken": TOKEN}


def test_only_put_events_is_runnable() -> None:
    registry = default_registry()
    assert registry.problem(PUT) is None and registry.problem(WAIT) is None
    assert registry.problem("arn:aws:states:::events:putRule") is not None
    assert registry.problem(PUT + ".sync") is not None


def test_in_memory_a_workflow_sends_an_event_per_execution(aws: Any) -> None:
    url = _rule(aws)
    env = WorkflowEnvironment(invoker=invoker(fixed(aws)))
    parameters = {
        "Entries": [{"Source": "orders", "DetailType": "Placed", "Detail": {"order.$": "$.id"}}]
    }
    arn = env.start(definition(PUT, parameters), {"id": "o-1"}, state_machine="Shop")
    env.run(arn)
    result = env.result(arn)
    assert result.status == "SUCCEEDED", result
    (event,) = _events(aws, url)
    assert event["detail"] == {"order": "o-1"}
    assert event["resources"] == [
        arn,
        arn.replace(":execution:", ":stateMachine:").rsplit(":", 1)[0],
    ]
