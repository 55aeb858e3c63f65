"""Over ``stepflow local`` with boto3: a distributed Map reads a CSV from S3, writes results to S3.

The issue's acceptance, end to end on the path users run: the items come from an
``ItemReader`` (``s3:getObject``, CSV with its header in the first row) in the
stack's S3 (moto), each item runs as a STANDARD child execution that sends one SQS
message (so each item's processing is counted), and the ``ResultWriter`` writes
AWS's layout (``<Prefix>/<map run id>/manifest.json`` and ``SUCCEEDED_0.json``).
Written against the distributed Map contract (docs/distributed-map.md); expected to
fail until the map run runtime is merged.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.local import LocalStack

from tests.e2e.waiting import wait_for

ROLE = "arn:aws:iam::123456789012:role/stepflow/MapRole"
ITEMS = 10
ITEMS_BUCKET = "dmap-items"
RESULTS_BUCKET = "dmap-results"
PREFIX = "runs"


def csv_file(rows: int) -> bytes:
    """``id,name`` then ``rows`` rows ``1,item-1`` ..."""
    lines = ["id,name", *(f"{i},item-{i}" for i in range(1, rows + 1))]
    return ("\n".join(lines) + "\n").encode()


def definition(queue_url: str) -> str:
    """A distributed Map over the CSV whose child sends one message per item."""
    send = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage",
        "Parameters": {"QueueUrl": queue_url, "MessageBody.$": "$.id"},
        "ResultPath": None,
        "End": True,
    }
    mapped = {
        "Type": "Map",
        "ItemReader": {
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"},
            "Parameters": {"Bucket.$": "$.bucket", "Key.$": "$.key"},
        },
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Send",
            "States": {"Send": send},
        },
        "MaxConcurrency": 4,
        "Label": "Rows",
        "ResultWriter": {
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": RESULTS_BUCKET, "Prefix": PREFIX},
        },
        "End": True,
    }
    return json.dumps({"StartAt": "Rows", "States": {"Rows": mapped}})


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0) as running:
        yield running


def _drain(sqs: Any, url: str) -> list[str]:
    bodies: list[str] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return bodies
        for message in got:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_distributed_map_reads_csv_from_s3_and_writes_results_to_s3(stack: LocalStack) -> None:
    s3, sqs, sfn = stack.client("s3"), stack.client("sqs"), stack.stepfunctions()
    s3.create_bucket(Bucket=ITEMS_BUCKET)
    s3.create_bucket(Bucket=RESULTS_BUCKET)
    s3.put_object(Bucket=ITEMS_BUCKET, Key="rows.csv", Body=csv_file(ITEMS))
    url = sqs.create_queue(QueueName="dmap-processed")["QueueUrl"]
    machine = sfn.create_state_machine(name="CsvRows", definition=definition(url), roleArn=ROLE)
    started = sfn.start_execution(
        stateMachineArn=machine["stateMachineArn"],
        input=json.dumps({"bucket": ITEMS_BUCKET, "key": "rows.csv"}),
    )
    described = wait_for(sfn, started["executionArn"], timeout=120.0)
    assert described["status"] == "SUCCEEDED", described

    # Each item processed exactly once: one message per row, no row twice.
    processed = Counter(_drain(sqs, url))
    assert processed == Counter(str(i) for i in range(1, ITEMS + 1))

    # The output names the manifest, as on AWS.
    output = json.loads(described["output"])
    run_arn = output["MapRunArn"]
    run_id = run_arn.rsplit(":", 1)[-1]
    account = started["executionArn"].split(":")[4]
    assert run_arn.startswith(f"arn:aws:states:us-east-1:{account}:mapRun:CsvRows/Rows:")
    manifest_key = f"{PREFIX}/{run_id}/manifest.json"
    assert output["ResultWriterDetails"] == {"Bucket": RESULTS_BUCKET, "Key": manifest_key}

    # Exactly two objects written: the manifest and one file of 10 successful children.
    listed = s3.list_objects_v2(Bucket=RESULTS_BUCKET)["Contents"]
    succeeded_key = f"{PREFIX}/{run_id}/SUCCEEDED_0.json"
    assert sorted(o["Key"] for o in listed) == sorted([manifest_key, succeeded_key])
    manifest = json.loads(s3.get_object(Bucket=RESULTS_BUCKET, Key=manifest_key)["Body"].read())
    assert manifest["MapRunArn"] == run_arn
    assert [f["Key"] for f in manifest["ResultFiles"]["SUCCEEDED"]] == [succeeded_key]
    entries = json.loads(s3.get_object(Bucket=RESULTS_BUCKET, Key=succeeded_key)["Body"].read())
    inputs = Counter(json.loads(e["Input"])["id"] for e in entries)
    assert inputs == Counter(str(i) for i in range(1, ITEMS + 1))
    assert all(e["Status"] == "SUCCEEDED" for e in entries)

    # The map run is a real thing in the API.
    (listed_run,) = sfn.list_map_runs(executionArn=started["executionArn"])["mapRuns"]
    assert listed_run["mapRunArn"] == run_arn
    counts = sfn.describe_map_run(mapRunArn=run_arn)["itemCounts"]
    assert (counts["total"], counts["succeeded"], counts["failed"]) == (ITEMS, ITEMS, 0)
