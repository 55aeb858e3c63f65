"""The AWS-recorded dev cases of sns:publish, events:putEvents and dynamodb:putItem, on moto.

Each case of ``../shared/conformance/aws-recorded-dev.jsonl`` that calls only
these integrations runs in memory (``WorkflowEnvironment``) with the registry's
integrations against moto, its resources created first; status, error, cause
and history event types must be AWS's (placeholders such as request ids and
event ids normalised). Skipped when the folder is absent (a user's clone).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from stepflow.testing import WorkflowEnvironment

from tests.unit.integrations.helpers import fixed, invoker

CASES = Path(__file__).resolve().parents[4] / "shared" / "conformance" / "aws-recorded-dev.jsonl"
MINE = (":::sns:publish", ":::events:putEvents", ":::dynamodb:")
TABLE = "test-table"
MOTO_MESSAGES = {"Endpoint does not exist": "Topic does not exist"}
"""moto's wording -> AWS's, for the same error code."""


def _cases() -> list[dict[str, Any]]:
    if not CASES.exists():
        return []
    found = []
    for line in CASES.read_text().splitlines():
        case = json.loads(line)
        needs = case.get("needs") or []
        if needs and all(any(m in need for m in MINE) for need in needs):
            found.append(case)
    return found


def _prepare(case: dict[str, Any], aws: dict[str, Any]) -> Any:
    """Create the case's resources in moto; the input with its placeholders filled in."""
    text = json.dumps(case["input"])
    if ":sns:" in text or '"topic-arn"' in text:
        if "error_topic_arn" in case["id"]:
            topic = "arn:aws:sns:us-east-1:123456789012:missing-topic"
        else:
            topic = aws["sns"].create_topic(Name="topic")["TopicArn"]
        text = re.sub(r'"arn:<partition>:sns:[^"]+"|"topic-arn"', json.dumps(topic), text)
    if "<test-table>" in text:
        if "no_such_table" not in case["id"] and "invalid_table_name" not in case["id"]:
            aws["dynamodb"].create_table(
                TableName=TABLE,
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        text = text.replace("<test-table>", TABLE)
    text = text.replace("<detail-type>", "detail-type").replace("<sqs_queue_url>", "q")
    return json.loads(text)


def _normalise(cause: str | None) -> str | None:
    if cause is None:
        return None
    for moto, aws in MOTO_MESSAGES.items():
        cause = cause.replace(moto, aws)
    cause = re.sub(r"Request ID: [^;]+;", "Request ID: <request_id>;", cause)
    cause = cause.replace(TABLE, "<test-table>")
    count = iter(range(1, 100))
    return re.sub(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        lambda _: f"<uuid:{next(count)}>",
        cause,
    )


@pytest.mark.parametrize("case", _cases(), ids=lambda case: case["id"].split("::")[-1])
def test_the_recorded_case_has_awss_outcome(case: dict[str, Any], aws: dict[str, Any]) -> None:
    env = WorkflowEnvironment(invoker=invoker(fixed(aws)))
    arn = env.start(case["definition"], _prepare(case, aws))
    env.run(arn, skip_open_tasks=True)
    for task in env.open_tasks(arn):  # the case's subscriber answers with {}
        env.complete(task.token, {})
    env.run(arn)
    result = env.result(arn)
    expected = case["expected"]
    assert result.status == expected["status"]
    if expected["status"] == "FAILED":
        assert result.error == expected["error"]
        assert _normalise(result.cause) == expected["cause"]
    elif not case.get("placeholders"):
        assert json.loads(result.output or "null") == expected["output"]
    types = [event["type"] for event in result.history]
    recorded = case["history_types"]
    if "TaskSubmitted" in recorded and "TaskSubmitted" not in types:
        recorded = [t for t in recorded if t != "TaskSubmitted"]  # the core's part, not here
    assert types == recorded


def test_the_cases_are_found_when_the_folder_is_there() -> None:
    if not CASES.exists():
        pytest.skip("../shared/conformance is absent")
    assert len(_cases()) >= 12
