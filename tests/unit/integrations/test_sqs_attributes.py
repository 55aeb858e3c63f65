"""``sqs:sendMessage`` message attributes: a ``BinaryValue`` is base64 text in JSON.

Step Functions reads a binary attribute's JSON string as base64 (JSON has no
bytes), as sns:publish does here. Passing the text to botocore as it is would
send its UTF-8 bytes, which botocore base64-encodes again: the consumer would
receive the base64 text, not the bytes.
"""

from __future__ import annotations

import base64
from typing import Any

from tests.unit.integrations.helpers import body, fixed, invoker, queue

SEND = "arn:aws:states:::sqs:sendMessage"
RAW = b"\x00\x01\xff binary"


def test_a_binary_attribute_reaches_the_consumer_as_its_bytes(aws: Any) -> None:
    url, _ = queue(aws)
    attributes = {
        "bin": {"DataType": "Binary", "BinaryValue": base64.b64encode(RAW).decode()},
        "text": {"DataType": "String", "StringValue": "plain"},
    }
    parameters = {"QueueUrl": url, "MessageBody": "x", "MessageAttributes": attributes}
    outcome = invoker(fixed(aws))(body(SEND, parameters))
    assert outcome.ok, outcome
    got = aws["sqs"].receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"]
    assert len(got) == 1
    assert got[0]["MessageAttributes"]["bin"]["BinaryValue"] == RAW
    assert got[0]["MessageAttributes"]["text"]["StringValue"] == "plain"


def test_a_binary_attribute_that_is_not_base64_fails_before_any_send(aws: Any) -> None:
    url, _ = queue(aws)
    attributes = {"bin": {"DataType": "Binary", "BinaryValue": "not base64!"}}
    parameters = {"QueueUrl": url, "MessageBody": "x", "MessageAttributes": attributes}
    outcome = invoker(fixed(aws))(body(SEND, parameters))
    assert not outcome.ok
    assert outcome.error == "States.Runtime"
    assert "bin" in (outcome.cause or "")
    assert aws["sqs"].receive_message(QueueUrl=url).get("Messages", []) == []
