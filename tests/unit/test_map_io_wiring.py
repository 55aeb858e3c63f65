"""Where a Stepper is built, it gets the distributed Map's reader and writer."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from stepflow.aws.settings import Settings
from stepflow.aws.wiring import build
from stepflow.integrations.item_reader import S3ItemSource
from stepflow.integrations.result_writer import S3ResultSink
from stepflow.runtime.item_reading import MemoryItemSource
from stepflow.runtime.map_io import ItemReaderError, ReaderSpec, ResultWriterError, WriterSpec
from stepflow.runtime.result_writing import MemoryResultSink
from stepflow.testing import WorkflowEnvironment

from tests.moto_env import REGION, offline_aws

ENV = {
    "TABLE_NAME": "t",
    "QUEUE_URL": "q",
    "STEPFLOW_SIGNING_KEY": "k" * 48,
    "PAYLOAD_BUCKET": "stepflow-payloads",
}


def test_in_memory_environment_reads_and_writes_its_objects() -> None:
    env = WorkflowEnvironment()
    source, sink = env.stepper.item_source, env.stepper.result_sink
    assert isinstance(source, MemoryItemSource) and isinstance(sink, MemoryResultSink)
    env.objects[("b", "items.json")] = b'["a","b"]'
    assert list(
        source.read(
            ReaderSpec("arn:aws:states:::s3:getObject", {"Bucket": "b", "Key": "items.json"})
        )
    ) == ["a", "b"]
    sink.write(
        WriterSpec("arn:aws:states:::s3:putObject", {"Bucket": "r"}),
        "run",
        [{"Status": "SUCCEEDED"}],
    )
    assert json.loads(env.objects[("r", "run/SUCCEEDED_0.json")]) == [{"Status": "SUCCEEDED"}]


def test_aws_environment_reads_through_s3(monkeypatch: pytest.MonkeyPatch) -> None:
    with offline_aws(monkeypatch):
        s3: Any = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="items-bucket")
        s3.put_object(Bucket="items-bucket", Key="i.jsonl", Body=b"1\n2\n")
        env = WorkflowEnvironment(aws=True)
        assert isinstance(env.stepper.item_source, S3ItemSource)
        spec = ReaderSpec(
            "arn:aws:states:::s3:getObject",
            {"Bucket": "items-bucket", "Key": "i.jsonl"},
            {"InputType": "JSONL"},
            role_arn="arn:aws:iam::123456789012:role/reader",
        )
        assert list(env.stepper.item_source.read(spec)) == [1, 2]


def test_deployed_steppers_get_s3_io_that_refuses_stepflows_bucket() -> None:
    wiring = build(Settings.from_environ(ENV))
    for stepper in (wiring.stepper, wiring.runner, wiring.api_stepper):
        assert isinstance(stepper.item_source, S3ItemSource)
        assert isinstance(stepper.result_sink, S3ResultSink)
    reader = ReaderSpec(
        "arn:aws:states:::s3:getObject", {"Bucket": "stepflow-payloads", "Key": "k"}
    )
    with pytest.raises(ItemReaderError, match="target is a StepFlow resource"):
        list(wiring.stepper.item_source.read(reader))  # type: ignore[union-attr]
    writer = WriterSpec("arn:aws:states:::s3:putObject", {"Bucket": "stepflow-payloads"})
    with pytest.raises(ResultWriterError, match="target is a StepFlow resource"):
        wiring.stepper.result_sink.write(writer, "r", [])  # type: ignore[union-attr]
