"""``stepflow local``: the steppers' ItemReader and ResultWriter reach the stack's S3 with the role.

The reader/writer are the ones the stack's stepper Lambda handler and runner use
(``stack.wiring.stepper``); the S3 behind them is the stack's moto, seen by boto3.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.local import LocalStack
from stepflow.runtime.map_io import ItemReaderError, ReaderSpec, ResultWriterError, WriterSpec

ROLE = "arn:aws:iam::123456789012:role/stepflow/MapRole"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0, handlers={}) as running:
        yield running


def test_csv_items_read_and_results_written_through_the_stacks_s3(stack: LocalStack) -> None:
    s3: Any = stack.client("s3")
    s3.create_bucket(Bucket="map-items")
    rows = "id,name\n" + "".join(f"{i},item {i}\n" for i in range(10_000))
    s3.put_object(Bucket="map-items", Key="in/items.csv", Body=rows.encode())
    assert stack.wiring is not None
    stepper = stack.wiring.stepper
    assert stepper.item_source is not None and stepper.result_sink is not None
    spec = ReaderSpec(
        "arn:aws:states:::s3:getObject",
        {"Bucket": "map-items", "Key": "in/items.csv"},
        {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"},
        role_arn=ROLE,
        execution_role=ROLE,
    )
    items = list(stepper.item_source.read(spec))
    assert len(items) == 10_000
    assert items[0] == {"id": "0", "name": "item 0"} and items[-1]["id"] == "9999"

    results = [{"Name": str(i), "Status": "SUCCEEDED", "Output": json.dumps(i)} for i in range(3)]
    writer = WriterSpec(
        "arn:aws:states:::s3:putObject",
        {"Bucket": "map-items", "Prefix": "out"},
        {"Transformation": "COMPACT"},
        role_arn=ROLE,
        execution_role=ROLE,
        map_run_arn="arn:aws:states:us-east-1:123456789012:mapRun:m/Map:run-1",
    )
    details = stepper.result_sink.write(writer, "run-1", results)
    assert details == {"Bucket": "map-items", "Key": "out/run-1/manifest.json"}
    body = s3.get_object(Bucket="map-items", Key="out/run-1/SUCCEEDED_0.json")["Body"].read()
    assert json.loads(body) == [0, 1, 2]
    manifest = json.loads(s3.get_object(Bucket="map-items", Key=details["Key"])["Body"].read())
    assert manifest["ResultFiles"]["SUCCEEDED"] == [
        {"Key": "out/run-1/SUCCEEDED_0.json", "Size": len(body)}
    ]


def test_the_stacks_own_bucket_is_refused(stack: LocalStack) -> None:
    assert stack.wiring is not None
    own = stack.wiring.settings.payload_bucket
    assert own
    stepper = stack.wiring.stepper
    assert stepper.item_source is not None and stepper.result_sink is not None
    spec = ReaderSpec("arn:aws:states:::s3:getObject", {"Bucket": own, "Key": "k"}, role_arn=ROLE)
    with pytest.raises(ItemReaderError, match="target is a StepFlow resource"):
        list(stepper.item_source.read(spec))
    writer = WriterSpec("arn:aws:states:::s3:putObject", {"Bucket": own}, role_arn=ROLE)
    with pytest.raises(ResultWriterError, match="target is a StepFlow resource"):
        stepper.result_sink.write(writer, "r", [])
