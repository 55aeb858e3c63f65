"""The activity catalog and task tokens: validation, errors, unguessability and binding."""

from __future__ import annotations

import json
import math
import re
from collections import Counter

import pytest
from stepflow.activities import ActivityError, parse
from stepflow.engine.codec import decode_state

from tests.worker.harness import Harness, activity, task_machine


@pytest.fixture
def h() -> Harness:
    harness = Harness(task_machine(activity("jobs")))
    harness.service.create_activity({"name": "jobs"})
    return harness


def code_of(call: object, *args: object) -> str:
    with pytest.raises(ActivityError) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value.code


def test_create_is_idempotent_and_describe_list_delete_round_trip(h: Harness) -> None:
    first = h.service.describe_activity({"activityArn": activity("jobs")})
    again = h.service.create_activity({"name": "jobs"})
    assert again == {"activityArn": activity("jobs"), "creationDate": first["creationDate"]}
    h.service.create_activity({"name": "a.b c"[:3], "tags": [{"key": "team", "value": "x"}]})
    names = [a["name"] for a in h.service.list_activities({})["activities"]]
    assert names == ["a.b", "jobs"]
    h.service.delete_activity({"activityArn": activity("jobs")})
    assert code_of(h.service.describe_activity, {"activityArn": activity("jobs")}) == (
        "ActivityDoesNotExist"
    )
    h.service.delete_activity({"activityArn": activity("jobs")})  # deleting twice is fine


def test_listing_pages_and_rejects_bad_tokens(h: Harness) -> None:
    for i in range(4):
        h.service.create_activity({"name": f"act-{i}"})
    page = h.service.list_activities({"maxResults": 2})
    rest = h.service.list_activities({"maxResults": 2, "nextToken": page["nextToken"]})
    tail = h.service.list_activities({"maxResults": 2, "nextToken": rest["nextToken"]})
    seen = [a["name"] for p in (page, rest, tail) for a in p["activities"]]
    assert seen == ["act-0", "act-1", "act-2", "act-3", "jobs"]
    assert "nextToken" not in tail
    assert code_of(h.service.list_activities, {"nextToken": "nope"}) == "InvalidToken"
    assert code_of(h.service.list_activities, {"maxResults": 5000}) == "ValidationException"


@pytest.mark.parametrize("name", ["", "x" * 81, "has space", "a/b", "star*", 17, None])
def test_bad_activity_names_are_refused(h: Harness, name: object) -> None:
    assert code_of(h.service.create_activity, {"name": name}) == "InvalidName"


@pytest.mark.parametrize(
    "arn",
    [
        "nope",
        "arn:aws:states:us-east-1:123456789012:stateMachine:jobs",
        "arn:aws:states:eu-west-1:123456789012:activity:jobs",
        None,
    ],
)
def test_bad_activity_arns_are_refused(h: Harness, arn: object) -> None:
    assert code_of(h.service.describe_activity, {"activityArn": arn}) == "InvalidArn"
    assert code_of(h.poll_arn, arn) == "InvalidArn"


def test_polling_a_missing_activity_or_an_empty_one(h: Harness) -> None:
    assert code_of(h.poll, "missing") == "ActivityDoesNotExist"
    assert h.poll("jobs") == {}


def test_a_task_on_a_missing_activity_fails_instead_of_waiting() -> None:
    h = Harness(task_machine(activity("ghost")))
    arn = h.start()
    assert h.status(arn) == "FAILED"  # States.Runtime: no Catch applies
    failed = [e for e in h.history(arn) if e["type"] == "ActivityFailed"]
    assert failed[0]["activityFailedEventDetails"]["error"] == "States.Runtime"


def test_tokens_carry_128_bit_keys_and_differ_per_execution_and_attempt(h: Harness) -> None:
    tokens = []
    for _ in range(20):
        arn = h.start()
        record = h.log.get(arn)
        assert record is not None
        key = decode_state(record.state).token_key
        assert re.fullmatch(r"[0-9a-f]{32}", key)  # 128 random bits per execution
        tokens.append(h.poll("jobs")["taskToken"])
    assert len(set(tokens)) == 20
    signatures = [t.split(".")[2] for t in tokens]
    assert all(re.fullmatch(r"[0-9a-f]{64}", s) for s in signatures)
    # The signatures look random: hex digits are spread evenly (entropy near 4 bits each).
    counts = Counter("".join(signatures))
    total = sum(counts.values())
    entropy = -sum(n / total * math.log2(n / total) for n in counts.values())
    assert entropy > 3.9


def test_forged_and_malformed_tokens_are_invalid(h: Harness) -> None:
    arn = h.start()
    token = h.poll("jobs")["taskToken"]
    where, task, signature, delivery, mark = token.split(".")
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    forged = [
        f"{where}.{task}.{flipped}.{delivery}.{mark}",
        f"{where}.t99.{signature}.{delivery}.{mark}",
        f"{where}.{task}.{signature}.{delivery}.{'0' * 32}",
        "garbage",
        "a.b.c",
        "",
        "x" * 2000,
    ]
    for bad in forged:
        assert code_of(h.service.send_task_success, {"taskToken": bad, "output": "{}"}) == (
            "InvalidToken"
        ), bad
    history = h.history(arn)
    h.service.send_task_success({"taskToken": token, "output": "{}"})
    assert len(h.history(arn)) > len(history)


def test_a_token_is_bound_to_its_execution_attempt_and_delivery(h: Harness) -> None:
    first, second = h.start(), h.start()
    token_a = h.poll("jobs")["taskToken"]
    token_b = h.poll("jobs")["taskToken"]
    assert parse(token_a).execution_arn == first
    assert parse(token_b).execution_arn == second
    # Token A's signature does not open execution B's attempt of the same task id.
    where_b = token_b.split(".")[0]
    transplanted = ".".join([where_b, *token_a.split(".")[1:]])
    assert code_of(h.service.send_task_heartbeat, {"taskToken": transplanted}) == "InvalidToken"
    # A later delivery number is not something a worker can mint itself.
    parts = token_a.split(".")
    bumped = ".".join([*parts[:3], "2", parts[4]])
    assert code_of(h.service.send_task_heartbeat, {"taskToken": bumped}) == "InvalidToken"


@pytest.mark.parametrize("output", ["{not json", 42, None, "x" * (256 * 1024 + 1)])
def test_bad_output_is_refused_and_changes_nothing(h: Harness, output: object) -> None:
    arn = h.start()
    token = h.poll("jobs")["taskToken"]
    before = h.history(arn)
    assert code_of(h.service.send_task_success, {"taskToken": token, "output": output}) == (
        "InvalidOutput"
    )
    assert h.history(arn) == before


def test_failure_fields_are_checked(h: Harness) -> None:
    h.start()
    token = h.poll("jobs")["taskToken"]
    bad = {"taskToken": token, "error": "e" * 257}
    assert code_of(h.service.send_task_failure, bad) == "ValidationException"


def test_success_output_flows_on(h: Harness) -> None:
    arn = h.start({"n": 1})
    task = h.poll("jobs")
    assert json.loads(task["input"]) == {"n": 1}
    h.service.send_task_success({"taskToken": task["taskToken"], "output": '{"done": true}'})
    assert h.output(arn) == {"done": True}
