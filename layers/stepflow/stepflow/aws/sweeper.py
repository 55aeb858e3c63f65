"""Deletes what is left of an execution once DynamoDB's TTL has deleted its head.

A finished execution's head carries the table's TTL attribute (see
:mod:`stepflow.aws.dynamodb_log`); its history, task and other items do not,
because they are written while the execution runs and nobody knows then when
it will end. The sweeper runs on the table's stream, filtered to the TTL
deletions of heads, and deletes the rest of each such partition, so a
finished execution costs nothing after its retention. It only deletes items
of partitions whose head is gone, so a duplicate or late stream record is
harmless, and a partition whose head came back (an execution started again
under the same name before the sweep) is left alone.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from stepflow.aws.topology import PARTITION_KEY, SORT_KEY, TABLE_ENV_VAR

SERVICE = "stepflow-sweeper"
HEAD = "HEAD"
TTL_PRINCIPAL = "dynamodb.amazonaws.com"
BATCH = 25  # BatchWriteItem's limit

STREAM_FILTER: dict[str, Any] = {
    "eventName": ["REMOVE"],
    "userIdentity": {"type": ["Service"], "principalId": [TTL_PRINCIPAL]},
    "dynamodb": {"Keys": {SORT_KEY: {"S": [HEAD]}}},
}
"""The event-source filter: only the TTL deletions of execution heads reach the function."""

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="StepFlow", service=SERVICE)
processor = BatchProcessor(
    event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False
)


class SweepIncompleteError(RuntimeError):
    """DynamoDB left some deletions unprocessed after every retry; the record is retried."""


def is_expired_head(record: Mapping[str, Any]) -> bool:
    """True for a stream record of a head deleted by TTL (the filter's test, in code)."""
    identity = record.get("userIdentity") or {}
    keys = (record.get("dynamodb") or {}).get("Keys") or {}
    return (
        record.get("eventName") == "REMOVE"
        and identity.get("type") == "Service"
        and identity.get("principalId") == TTL_PRINCIPAL
        and keys.get(SORT_KEY, {}).get("S") == HEAD
        and str(keys.get(PARTITION_KEY, {}).get("S", "")).startswith("EX#")
    )


def sweep_partition(
    client: Any,
    table: str,
    pk: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
    attempts: int = 8,
) -> int:
    """Delete every item of partition ``pk`` unless its head exists; returns how many."""
    key = {PARTITION_KEY: {"S": pk}}
    head = client.get_item(
        TableName=table, Key={**key, SORT_KEY: {"S": HEAD}}, ConsistentRead=True
    ).get("Item")
    if head is not None:
        return 0  # the name was reused: the partition belongs to a live execution again
    deleted = 0
    query: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "#pk = :pk",
        "ExpressionAttributeNames": {"#pk": PARTITION_KEY, "#sk": SORT_KEY},
        "ExpressionAttributeValues": {":pk": {"S": pk}},
        "ProjectionExpression": "#pk, #sk",
        "ConsistentRead": True,
    }
    while True:
        page = client.query(**query)
        keys = [item for item in page.get("Items", []) if item[SORT_KEY]["S"] != HEAD]
        for start in range(0, len(keys), BATCH):
            chunk = keys[start : start + BATCH]
            _delete(client, table, chunk, sleep, attempts)
            deleted += len(chunk)
        if "LastEvaluatedKey" not in page:
            return deleted
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _delete(
    client: Any,
    table: str,
    keys: list[dict[str, Any]],
    sleep: Callable[[float], None],
    attempts: int,
) -> None:
    requests = [{"DeleteRequest": {"Key": k}} for k in keys]
    for attempt in range(attempts):
        response = client.batch_write_item(RequestItems={table: requests})
        requests = response.get("UnprocessedItems", {}).get(table, [])
        if not requests:
            return
        sleep(min(2.0, 0.05 * 2**attempt))
    raise SweepIncompleteError(f"{len(requests)} deletions still unprocessed in {table}")


_client: Any = None


def _dynamodb() -> Any:
    global _client
    if _client is None:
        _client = importlib.import_module("boto3").client("dynamodb")
    return _client


def record_handler(record: DynamoDBRecord) -> None:
    """Sweep the partition of one expired head (other records are ignored)."""
    if not is_expired_head(record.raw_event):
        return
    pk = record.raw_event["dynamodb"]["Keys"][PARTITION_KEY]["S"]
    deleted = sweep_partition(_dynamodb(), os.environ[TABLE_ENV_VAR], pk)
    metrics.add_metric(name="ItemsSwept", unit=MetricUnit.Count, value=deleted)
    logger.info("swept an expired execution", extra={"pk": pk, "items": deleted})


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """The Lambda entry point (DynamoDB stream, partial batch failures)."""
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
