"""The real stepper Lambda handler over moto's SQS drops forged messages: no effect, no retry.

A forged result (unsigned, signed with another key, or a genuine signature
moved onto another body) of a real task completes nothing, writes nothing to
the log and is not reported as a batch item failure (so it is never retried
into the DLQ); the genuine result then completes the task once, and its
replay is a no-op.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from stepflow.aws import stepper_lambda as stepper_handler
from stepflow.runtime import Message
from stepflow.runtime.signing import MessageSigner

from tests.integration.test_stepper_handler import (
    CONTEXT,
    Stack,
    emf_metrics,
    lambda_event,
)
from tests.integration.test_stepper_handler import (
    stack as stack,  # the fixture
)


@pytest.fixture
def writes(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every write to the stack's log, by method."""
    seen: list[str] = []
    for name in ("create", "commit", "clear_outbox", "put_lease"):
        inner = getattr(stack.log, name)

        def counting(*args: Any, _name: str = name, _inner: Any = inner, **kw: Any) -> Any:
            seen.append(_name)
            return _inner(*args, **kw)

        monkeypatch.setattr(stack.log, name, counting)
    yield seen


def send_bodies(stack: Stack, bodies: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    for body in bodies:
        stack.sqs.send_message(QueueUrl=stack.url, MessageBody=json.dumps(body))
    received = stack.receive()
    assert len(received) == len(bodies)
    return received


def test_forged_results_complete_nothing_write_nothing_and_are_not_retried(
    stack: Stack,
    writes: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN an execution whose first task ran: its genuine, signed result is on the queue
    # (the runner's own commit failed, so the result took the fallback: the queue)
    arn = stack.start("e1", {"lines": [1, 2]})
    commit = stack.log.commit

    def unreachable(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the table is unreachable")

    monkeypatch.setattr(stack.log, "commit", unreachable)
    assert stack.run(stack.receive()) == []
    monkeypatch.setattr(stack.log, "commit", commit)
    (result,) = stack.receive()
    genuine = json.loads(result["Body"])
    assert genuine["body"]["type"] == "TaskSucceeded"
    stack.sqs.change_message_visibility(
        QueueUrl=stack.url, ReceiptHandle=result["ReceiptHandle"], VisibilityTimeout=3600
    )
    # AND three forgeries of it that carry the attacker's output
    evil = {**genuine["body"], "output": {"lines": [], "valid": True, "total": -1}}
    unsigned = {k: v for k, v in genuine.items() if k not in ("key_id", "signature")}
    unsigned["body"] = evil
    other_key = MessageSigner.random()
    wrong_key = other_key.sign(Message.from_json(unsigned))
    moved = {**genuine, "body": evil}  # a valid signature moved to another body
    batch = send_bodies(stack, [unsigned, wrong_key, moved])
    seq = stack.log.get(arn).seq  # type: ignore[union-attr]
    writes.clear()
    capsys.readouterr()
    # WHEN the real handler processes them
    response = stepper_handler.handler(lambda_event(batch), CONTEXT)
    # THEN no record failed (none is retried), nothing was written, the execution did not move
    assert response["batchItemFailures"] == []
    assert writes == []
    assert stack.log.get(arn).seq == seq  # type: ignore[union-attr]
    assert emf_metrics(capsys.readouterr().out)["ForgedMessages"] == [3.0]
    for m in batch:
        stack.sqs.delete_message(QueueUrl=stack.url, ReceiptHandle=m["ReceiptHandle"])
    assert stack.receive() == []
    # WHEN the genuine result is delivered
    (again,) = send_bodies(stack, [genuine])
    assert stack.run([again]) == []
    # THEN it is committed once, with the real output
    assert writes.count("commit") == 1
    state = stack.log.get(arn).state  # type: ignore[union-attr]
    assert json.dumps(evil["output"]) not in json.dumps(state)
    # AND replaying it changes nothing (the log's seq check), and is not a failure either
    writes.clear()
    (replayed,) = send_bodies(stack, [genuine])
    assert stack.run([replayed]) == []
    assert "commit" not in writes
