"""bench/map_scale.py --local: a distributed Map through boto3 against ``stepflow local``.

Starts the local stack in process (moto server, the API, the SQS pollers, as
``stepflow local`` does), uploads a CSV of N rows to S3, and runs a
distributed Map whose ItemReader reads it (``s3:getObject``, CSV, header in the
first row) and whose ResultWriter writes the results to S3; each item runs a
Lambda task (an in-process handler) and a Pass. Prints the time from
StartExecution to the end, the Map Run's counts (DescribeMapRun, when the API
has it) and the layout of what the ResultWriter wrote.

Targets (issue 14, item 6): 10,000 EXPRESS items in under 3 minutes, 1,000
STANDARD items in under 5 minutes.

    .venv/bin/python bench/map_scale.py --local --items 10000 --map express
    .venv/bin/python bench/map_scale.py --local --items 1000 --map standard
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import re
import time
from collections import Counter
from typing import Any
from unittest import mock

from botocore.exceptions import ClientError
from stepflow.local import LocalStack
from stepflow.local.moto_patches import uninstall_item_snapshots

ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"
FN = "arn:aws:lambda:us-east-1:000000000000:function:"
ITEMS_BUCKET = "map-scale-items"
RESULTS_BUCKET = "map-scale-results"
TARGETS = {"express": 180.0, "standard": 300.0}


WRITES = ("transact_write_items", "put_item", "update_item", "delete_item")
CALLS: Counter[str] = Counter()
"""moto's DynamoDB item operations (a batch request's items each), by operation (the
stack's moto runs in this process)."""
REQUESTS: Counter[str] = Counter()
"""The DynamoDB and SQS requests moto served (HTTP requests), by operation."""
BATCHES = ("batch_get_item", "batch_write_item")
SQS = ("send_message", "send_message_batch", "receive_message", "delete_message_batch")


@contextlib.contextmanager
def counted_dynamodb() -> Any:
    """Count the DynamoDB item operations and the DynamoDB and SQS requests moto serves."""
    backend = importlib.import_module("moto.dynamodb.models").DynamoDBBackend
    handler = importlib.import_module("moto.dynamodb.responses").DynamoHandler
    queues = importlib.import_module("moto.sqs.responses").SQSResponse
    names = (*WRITES, "get_item", "query")
    patched = [
        *((backend, name, CALLS, name) for name in names),
        *((handler, name, REQUESTS, name) for name in (*names, *BATCHES)),
        *((queues, name, REQUESTS, f"sqs:{name}") for name in SQS),
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _, _ in patched]

    def counting(counter: Counter[str], label: str, original: Any) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            counter[label] += 1
            return original(self, *args, **kwargs)

        return call

    for (owner, name, counter, label), (_, _, original) in zip(patched, originals, strict=True):
        setattr(owner, name, counting(counter, label, original))
    try:
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def work(row: Any) -> Any:
    """The item processor's Lambda task: echo the row's id."""
    return {"id": row["id"], "ok": True}


def definition(mode: str) -> dict[str, Any]:
    """A distributed Map reading a CSV from S3 and writing its results to S3."""
    return {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"},
                    "Parameters": {"Bucket": ITEMS_BUCKET, "Key": "items.csv"},
                },
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": mode.upper()},
                    "StartAt": "Work",
                    "States": {
                        "Work": {"Type": "Task", "Resource": FN + "work", "Next": "Shape"},
                        "Shape": {"Type": "Pass", "Parameters": {"id.$": "$.id"}, "End": True},
                    },
                },
                "MaxConcurrency": 1000,
                "Label": "scale",
                "ResultWriter": {
                    "Resource": "arn:aws:states:::s3:putObject",
                    "Parameters": {"Bucket": RESULTS_BUCKET, "Prefix": "out"},
                },
                "End": True,
            }
        },
    }


def csv_rows(count: int) -> str:
    """A CSV with a header row and ``count`` rows."""
    lines = ["id,name,amount", *(f"{i},item-{i},{i % 97}" for i in range(count))]
    return "\n".join(lines) + "\n"


def run_one(stack: LocalStack, count: int, mode: str, timeout: float) -> int:
    """Run one distributed Map of ``count`` items; 0 on success within the target."""
    s3, sfn = stack.client("s3"), stack.stepfunctions()
    for bucket in (ITEMS_BUCKET, RESULTS_BUCKET):
        with contextlib.suppress(ClientError):
            s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=ITEMS_BUCKET, Key="items.csv", Body=csv_rows(count).encode())
    name = f"map-scale-{mode}-{count}-{int(time.time())}"
    try:
        machine = sfn.create_state_machine(
            name=name, definition=json.dumps(definition(mode)), roleArn=ROLE
        )["stateMachineArn"]
    except ClientError as exc:
        print(f"   NOT SUPPORTED: CreateStateMachine refused the definition: {exc}")
        return 2
    CALLS.clear()
    REQUESTS.clear()
    started, cpu = time.perf_counter(), time.process_time()
    arn = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    status, described = "RUNNING", {}
    while time.perf_counter() - started < timeout:
        described = sfn.describe_execution(executionArn=arn)
        status = described["status"]
        if status != "RUNNING":
            break
        time.sleep(0.5)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    target = TARGETS[mode]
    verdict = "within" if elapsed < target and status == "SUCCEEDED" else "NOT within"
    cause = f"{described.get('error', '')}: {str(described.get('cause', ''))[:300]}"
    if status == "FAILED" and "must be an array" in cause:
        print(f"   NOT SUPPORTED: this build ignores ItemReader ({cause})")
        return 2
    print(
        f"   {count:,} {mode.upper()} items: {status} in {elapsed:.1f} s ({verdict} {target:.0f} s)"
    )
    if status != "SUCCEEDED":
        print(f"   {cause}" if status == "FAILED" else "   (gave up waiting)")
        return 1
    writes = {name: CALLS[name] for name in WRITES if CALLS[name]}
    shown = ", ".join(f"{name} {n:,}" for name, n in writes.items())
    print(
        f"   {count / elapsed:.1f} items/s; DynamoDB writes per item "
        f"{sum(writes.values()) / count:.2f} ({shown}),"
        f" reads per item {(CALLS['get_item'] + CALLS['query']) / count:.2f}"
    )
    dynamodb = sum(n for name, n in REQUESTS.items() if not name.startswith("sqs:"))
    sqs = sum(n for name, n in REQUESTS.items() if name.startswith("sqs:"))
    print(
        f"   requests per item: DynamoDB {dynamodb / count:.3f}, SQS {sqs / count:.3f}"
        f" ({', '.join(f'{name} {n:,}' for name, n in REQUESTS.most_common())})"
    )
    print(f"   CPU time (whole process: moto, stack, client) {cpu:.1f} s; {_load()}")
    print(f"   output: {described.get('output', '')[:300]}")
    _map_run(sfn, arn)
    _layout(s3)
    return 0 if verdict == "within" else 1


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min)"


def _map_run(sfn: Any, arn: str) -> None:
    try:
        runs = sfn.list_map_runs(executionArn=arn)["mapRuns"]
        for run in runs:
            described = sfn.describe_map_run(mapRunArn=run["mapRunArn"])
            print(f"   map run: {described['status']}, items {described['itemCounts']}")
    except ClientError as exc:
        print(f"   map run API: {exc.response['Error']['Code']}")


def _layout(s3: Any) -> None:
    """What the ResultWriter wrote: files by kind, sizes, the manifest."""
    kinds: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    manifest: Any = None
    prefix = "out"
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=RESULTS_BUCKET, Prefix="out/"):
        for obj in page.get("Contents", []):
            kind = re.sub(r"_\d+\.json$", "_n.json", obj["Key"].rsplit("/", 1)[-1])
            kinds[kind] += 1
            sizes[kind] += obj["Size"]
            if kind == "manifest.json":
                body = s3.get_object(Bucket=RESULTS_BUCKET, Key=obj["Key"])["Body"].read()
                manifest = json.loads(body)
                prefix = obj["Key"].rsplit("/", 1)[0]
    if not kinds:
        print("   results layout: nothing under s3://map-scale-results/out/")
        return
    print(f"   results layout under s3://{RESULTS_BUCKET}/{prefix}/:")
    for kind in sorted(kinds):
        print(f"     {kind}: {kinds[kind]} file(s), {sizes[kind]:,} bytes")
    print(f"   manifest: {json.dumps(manifest)[:400]}")


def main(counts: list[int], modes: list[str], *, timeout: float, snapshots: str = "items") -> int:
    """Run each count in each distributed mode against one local stack.

    ``snapshots="items"`` is how ``stepflow local`` ships: moto's transactions copy
    the items they touch (stepflow.local.moto_patches); ``"table"`` gives moto back
    its own transactions, which deep-copy the whole table (the "before").
    """
    if "inline" in modes:
        print("--local runs distributed Maps only (--map standard,express)")
        return 2
    quiet = {
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_TRACE_DISABLED": "1",
    }
    names = ["werkzeug"] + [n for n in logging.root.manager.loggerDict if n.startswith("stepflow")]
    levels = {name: logging.getLogger(name).level for name in names}
    # Quiet for the run only: a test that calls main() must not leave the process muted
    # (the stepper handler's metrics and request logs are what other tests read).
    with mock.patch.dict(os.environ, quiet):
        for name in names:
            logging.getLogger(name).setLevel(
                logging.WARNING if name != "werkzeug" else logging.ERROR
            )
        try:
            return _run(counts, modes, timeout=timeout, snapshots=snapshots)
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


def _run(counts: list[int], modes: list[str], *, timeout: float, snapshots: str) -> int:
    """Run each count in each mode against one local stack (see :func:`main`)."""
    code = 0
    with contextlib.ExitStack() as scope:
        scope.enter_context(counted_dynamodb())
        stack = scope.enter_context(LocalStack(port=0, handlers={"work": work}))
        if snapshots == "table":
            print("before: moto's own transactions (a deep copy of the table each)")
            uninstall_item_snapshots()
        for mode in modes:
            for count in counts:
                print(f"\n== local: distributed Map {mode.upper()}, {count:,} items from S3 CSV")
                try:
                    code = max(code, run_one(stack, count, mode, timeout))
                except ClientError as exc:
                    print(f"   NOT SUPPORTED (or broken) on this build: {exc}")
                    code = 2
    return code
