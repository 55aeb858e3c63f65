"""``sns:publish`` against moto in process: one message per task, AWS's shapes and error names."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import boto3
from stepflow.integrations import default_registry
from stepflow.integrations.sns import SnsPublish
from stepflow.testing import WorkflowEnvironment

from tests.unit.integrations.helpers import (
    TOKEN,
    body,
    definition,
    drain,
    fixed,
    invoker,
    queue,
    role_clients,
    sdk_metadata_ok,
)

PUBLISH = "arn:aws:states:::sns:publish"
WAIT = PUBLISH + ".waitForTaskToken"


def _topic(aws: dict[str, Any], name: str = "orders", raw: bool = True) -> tuple[str, str]:
    """A topic with an SQS subscription (raw delivery or SNS's envelope): (topic ARN, queue URL)."""
    topic = aws["sns"].create_topic(Name=name)["TopicArn"]
    url, arn = queue(aws, f"{name}-inbox")
    attributes = {"RawMessageDelivery": "true" if raw else "false"}
    aws["sns"].subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes=attributes)
    return topic, url


def test_a_publish_delivers_exactly_one_message_and_returns_snss_response(aws: Any) -> None:
    topic, url = _topic(aws)
    outcome = invoker(fixed(aws))(body(PUBLISH, {"TopicArn": topic, "Message": "hello"}))
    assert outcome.ok, outcome
    assert re.fullmatch(r"[0-9a-f-]{36}", outcome.output["MessageId"])
    assert sdk_metadata_ok(outcome.output)
    assert [m["Body"] for m in drain(aws, url)] == ["hello"]


def test_a_message_that_is_not_a_string_is_sent_as_json_text(aws: Any) -> None:
    topic, url = _topic(aws)
    run = invoker(fixed(aws))
    for message in ({"Message": "HelloWorld!", "n": 1}, 1, True, ["a"]):
        assert run(body(PUBLISH, {"TopicArn": topic, "Message": message})).ok
    bodies = [m["Body"] for m in drain(aws, url)]
    assert sorted(bodies) == sorted(['{"Message":"HelloWorld!","n":1}', "1", "true", '["a"]'])


def test_message_attributes_reach_the_subscriber(aws: Any) -> None:
    topic, url = _topic(aws, raw=False)  # the envelope carries them (moto's raw binary fails)
    attributes = {
        "kind": {"DataType": "String", "StringValue": "order"},
        "blob": {"DataType": "Binary", "BinaryValue": base64.b64encode(b"\x00\x01").decode()},
    }
    parameters = {"TopicArn": topic, "Message": "m", "MessageAttributes": attributes}
    assert invoker(fixed(aws))(body(PUBLISH, parameters)).ok
    (message,) = drain(aws, url)
    got = json.loads(message["Body"])["MessageAttributes"]
    assert got["kind"] == {"Type": "String", "Value": "order"}
    assert got["blob"] == {"Type": "Binary", "Value": base64.b64encode(b"\x00\x01").decode()}


def test_target_arn_and_phone_number_are_publish_targets(aws: Any) -> None:
    topic, url = _topic(aws)
    run = invoker(fixed(aws))
    assert run(body(PUBLISH, {"TargetArn": topic, "Message": "to-target"})).ok
    sms = run(body(PUBLISH, {"PhoneNumber": "+15555550100", "Message": "sms"}))
    assert sms.ok and sms.output["MessageId"]
    assert [m["Body"] for m in drain(aws, url)] == ["to-target"]


def test_a_topic_that_does_not_exist_fails_as_on_aws(aws: Any) -> None:
    _, url = _topic(aws)
    missing = "arn:aws:sns:us-east-1:123456789012:nope"
    outcome = invoker(fixed(aws))(body(PUBLISH, {"TopicArn": missing, "Message": "x"}))
    assert outcome.error == "SNS.NotFoundException"
    assert re.fullmatch(
        r".+ \(Service: AmazonSNS; Status Code: 404; Error Code: NotFound; "
        r"Request ID: \S+; Proxy: null\)",
        outcome.cause or "",
    )
    assert drain(aws, url) == []


def test_a_message_over_256_kib_is_refused_by_sns_and_nothing_is_delivered(aws: Any) -> None:
    topic, url = _topic(aws)
    run = invoker(fixed(aws))
    outcome = run(body(PUBLISH, {"TopicArn": topic, "Message": "x" * (256 * 1024 + 1)}))
    assert outcome.error == "SNS.InvalidParameterException"
    assert "Error Code: InvalidParameter;" in (outcome.cause or "")
    assert drain(aws, url) == []


def test_a_missing_or_null_message_is_snss_validation_error(aws: Any) -> None:
    topic, url = _topic(aws)
    run = invoker(fixed(aws))
    for parameters in ({"TopicArn": topic}, {"TopicArn": topic, "Message": None}):
        outcome = run(body(PUBLISH, parameters))
        assert outcome.error == "SNS.AmazonSNSException"
        assert (outcome.cause or "").startswith(
            "1 validation error detected: Value null at 'message' failed to satisfy "
            "constraint: Member must not be null (Service: AmazonSNS; Status Code: 400; "
            "Error Code: ValidationError; Request ID: "
        )
    assert drain(aws, url) == []


def test_wrong_types_and_unknown_fields_fail_before_any_call(aws: Any) -> None:
    topic, url = _topic(aws)
    run = invoker(fixed(aws))
    wrong = run(body(PUBLISH, {"TopicArn": 42, "Message": "x"}))
    assert wrong.error == "States.Runtime"
    assert "[The value for the field 'TopicArn' must be a STRING]" in (wrong.cause or "")
    unknown = run(body(PUBLISH, {"TopicArn": topic, "Message": "x", "Colour": "red"}))
    assert unknown.error == "States.Runtime"
    assert "The field 'Colour' is not supported by Step Functions" in (unknown.cause or "")
    not_object = run(body(PUBLISH, "just text"))
    assert not_object.error == "States.Runtime"
    bad_binary = {"b": {"DataType": "Binary", "BinaryValue": "not base64!"}}
    bad = run(body(PUBLISH, {"TopicArn": topic, "Message": "x", "MessageAttributes": bad_binary}))
    assert bad.error == "States.Runtime"
    assert drain(aws, url) == []


def test_the_topics_region_picks_the_client(aws: Any) -> None:
    west = boto3.client("sns", region_name="eu-west-1")
    topic = west.create_topic(Name="west")["TopicArn"]
    outcome = invoker(role_clients())(body(PUBLISH, {"TopicArn": topic, "Message": "x"}))
    assert outcome.ok, outcome


def test_wait_for_task_token_sends_the_token_once_and_returns_the_send(aws: Any) -> None:
    topic, url = _topic(aws)
    parameters = {"TopicArn": topic, "Message": {"TaskToken": TOKEN, "arg": "Hello"}}
    outcome = invoker(fixed(aws))(body(WAIT, parameters))
    assert outcome.ok and outcome.output["MessageId"]
    (message,) = drain(aws, url)
    assert json.loads(message["Body"]) == {"TaskToken": TOKEN, "arg": "Hello"}


def test_only_publish_in_request_response_or_wait_for_token_is_runnable() -> None:
    registry = default_registry()
    assert registry.problem(PUBLISH) is None
    assert registry.problem(WAIT) is None
    assert registry.problem(PUBLISH + ".sync") is not None
    assert registry.problem("arn:aws:states:::sns:subscribe") is not None
    assert SnsPublish().check("createTopic", "request-response") is not None


def test_in_memory_a_workflow_publishes_then_waits_for_the_token(aws: Any) -> None:
    topic, url = _topic(aws)
    env = WorkflowEnvironment(invoker=invoker(fixed(aws)))
    parameters = {"TopicArn": topic, "Message": {"TaskToken.$": "$$.Task.Token", "n.$": "$.n"}}
    arn = env.start(definition(WAIT, parameters), {"n": 7})
    env.run(arn, skip_open_tasks=True)
    (message,) = drain(aws, url)
    sent = json.loads(message["Body"])
    assert sent["n"] == 7
    (task,) = env.open_tasks(arn)
    assert task.token == sent["TaskToken"]
    env.complete(sent["TaskToken"], {"approved": True})
    env.run(arn)
    result = env.result(arn)
    assert result.status == "SUCCEEDED"
    assert json.loads(result.output or "null") == {"approved": True}
    assert drain(aws, url) == []


def test_in_memory_a_missing_topic_fails_the_execution_with_snss_error(aws: Any) -> None:
    env = WorkflowEnvironment(invoker=invoker(fixed(aws)))
    parameters = {"TopicArn": "arn:aws:sns:us-east-1:123456789012:gone", "Message.$": "$"}
    arn = env.start(definition(PUBLISH, parameters), {"m": 1})
    env.run(arn)
    result = env.result(arn)
    assert (result.status, result.error) == ("FAILED", "SNS.NotFoundException")


def test_a_message_of_exactly_256_kib_is_delivered_once(aws: Any) -> None:
    topic, url = _topic(aws)
    message = "é" * (128 * 1024)  # 256 KiB of UTF-8 in half as many characters
    assert invoker(fixed(aws))(body(PUBLISH, {"TopicArn": topic, "Message": message})).ok
    assert [m["Body"] for m in drain(aws, url)] == [message]


def test_a_role_that_is_no_role_arn_fails_the_task_and_publishes_nothing(aws: Any) -> None:
    topic, url = _topic(aws)
    request = body(PUBLISH, {"TopicArn": topic, "Message": "x"}, role_arn="not-a-role")
    outcome = invoker(role_clients())(request)
    assert outcome.error == "States.TaskFailed"
    assert "not-a-role" in (outcome.cause or "")
    assert drain(aws, url) == []
