"""Hooks from the table stream: real log writes (DynamoDBLog on moto), the stream read
back from moto's dynamodbstreams, fed to the real hooks Lambda handler.

Counted: every hook-visible history event of an execution reaches the hook exactly once
and in commit order (Parallel, Map and a caught error); a redelivered stream is dropped
by the hook's dedup keys; a failing hook fails its record and every record after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config

from tests.hook_support import HANDLERS, INPUT, MACHINE, RecordingHook, stream_records

boto3 = pytest.importorskip("boto3")

from stepflow.aws import DynamoDBLog, hooks_lambda  # noqa: E402
from stepflow.aws.stream_records import StreamDecoder  # noqa: E402
from stepflow.hooks import Dispatcher, kind_of  # noqa: E402
from stepflow.local.gateway import CONTEXT  # noqa: E402
from stepflow.local.stream_poller import ensure_stream  # noqa: E402
from stepflow.testing import WorkflowEnvironment  # noqa: E402
from stepflow.testing.durable import moto_environment  # noqa: E402

TABLE = "stepflow-testing"


class Rig:
    """A durable environment on moto whose table has the stack's stream."""

    def __init__(self, env: WorkflowEnvironment) -> None:
        self.env = env
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        self.stream = ensure_stream(dynamodb, TABLE)
        # moto answers on the regional endpoint, not on the account's (streams-ddb).
        self.streams = boto3.client(
            "dynamodbstreams",
            region_name="us-east-1",
            config=Config(account_id_endpoint_mode="disabled"),
        )
        self.log = DynamoDBLog(TABLE, client=dynamodb)

    def run(self, name: str) -> str:
        arn = self.env.start(MACHINE, INPUT, name=name)
        self.env.run(arn)
        assert self.env.result(arn).status == "SUCCEEDED"
        return arn

    def expected(self, arn: str) -> list[int]:
        """The ids of the execution's history events a hook sees, in order."""
        return [e["id"] for e in self.env.history(arn) if kind_of(e["type"]) is not None]

    def runtime(self, hook: RecordingHook) -> hooks_lambda.HooksRuntime:
        return hooks_lambda.HooksRuntime(StreamDecoder(self.log), Dispatcher([hook]))


@pytest.fixture
def rig() -> Iterator[Rig]:
    with moto_environment(handlers=HANDLERS) as env:
        yield Rig(env)
    hooks_lambda.configure(None)


def deliver(records: list[dict[str, Any]], size: int) -> list[list[str]]:
    """The records to the handler in batches of ``size``; each batch's failures."""
    answers = [
        hooks_lambda.handler({"Records": records[i : i + size]}, CONTEXT)
        for i in range(0, len(records), size)
    ]
    return [[f["itemIdentifier"] for f in answer["batchItemFailures"]] for answer in answers]


def test_every_event_reaches_the_hook_once_in_order_and_repeats_are_dropped(rig: Rig) -> None:
    # GIVEN two executions with Parallel, Map and a caught error, committed to the table
    first, second = rig.run("first"), rig.run("second")
    records = stream_records(rig.streams, rig.stream)
    hook = RecordingHook()
    runtime = rig.runtime(hook)
    hooks_lambda.configure(runtime)
    # WHEN the stream is delivered in batches of 5, then all of it again
    assert all(not failed for failed in deliver(records, 5))
    reads_first_pass = runtime.decoder.head_reads
    assert all(not failed for failed in deliver(records, 1000))
    # THEN each execution's events arrived once each, in commit order
    for arn in (first, second):
        expected = rig.expected(arn)
        assert len(expected) > 20
        assert hook.ids(arn) == expected
    kinds = [e.kind for e in hook.events if e.execution.execution_arn == first]
    assert kinds[0] == "ExecutionStarted" and kinds[-1] == "ExecutionSucceeded"
    assert "TaskFailed" in kinds and kinds.count("StateEntered") == kinds.count("StateExited")
    # the redelivery was dropped by the dedup keys, one repeat per event
    assert hook.repeats == len(rig.expected(first)) + len(rig.expected(second))
    info = hook.events[0].execution
    assert info.name == "first" and info.execution_type == "STANDARD"
    assert info.state_machine_arn.endswith(":stateMachine:StateMachine")
    # and the whole stream in one batch read no head: the head records carry it
    assert runtime.decoder.head_reads == reads_first_pass


def test_task_events_name_their_state(rig: Rig) -> None:
    arn = rig.run("named")
    hook = RecordingHook()
    hooks_lambda.configure(rig.runtime(hook))
    deliver(stream_records(rig.streams, rig.stream), 1000)
    failed = [e for e in hook.events if e.kind == "TaskFailed" and e.execution.execution_arn == arn]
    assert [e.state_name for e in failed] == ["Risky"]


def test_a_failing_hook_fails_its_record_and_every_record_after_it(rig: Rig) -> None:
    arn = rig.run("flaky")
    records = stream_records(rig.streams, rig.stream)
    hook = RecordingHook(fail_on="TaskScheduled", failures=1)
    hooks_lambda.configure(rig.runtime(hook))
    # WHEN the whole stream is one batch and the hook fails on the first TaskScheduled
    (failed,) = deliver(records, len(records))
    # THEN that record and every one after it are reported, by sequence number
    numbers = [r["dynamodb"]["SequenceNumber"] for r in records]
    assert failed and failed == numbers[numbers.index(failed[0]) :]
    assert len(failed) > 3  # records after the failed one are reported too
    # the events before the failed record were delivered: a prefix, without any task event
    delivered = hook.ids(arn)
    assert delivered == rig.expected(arn)[: len(delivered)]
    assert "TaskScheduled" not in [e.kind for e in hook.events]
    # AND redelivering from the failed record completes the history exactly once
    assert deliver(records[numbers.index(failed[0]) :], 1000) == [[]]
    assert hook.ids(arn) == rig.expected(arn)
