"""Deletes what is left of an execution once DynamoDB's TTL has deleted its head.

A finished execution's head carries the table's TTL attribute (see
:mod:`stepflow.aws.dynamodb_log`); its history, task and other items do not,
because they are written while the execution runs and nobody knows then when
it will end. The sweeper runs on the table's stream, filtered to the TTL
deletions of heads, and deletes the rest of each such partition with
:meth:`DynamoDBLog.purge <stepflow.aws.dynamodb_log.DynamoDBLog.purge>`, so a
finished execution costs nothing after its retention. The purge is fenced on
the head's absence, so a duplicate or late stream record is harmless and an
execution started again under the same name is never touched.
"""

from __future__ import annotations

from collections.abc import Mapping
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

from stepflow.aws.dynamodb_log import DynamoDBLog
from stepflow.aws.topology import PARTITION_KEY, SORT_KEY
from stepflow.aws.wiring import Wiring, build

SERVICE = "stepflow-sweeper"
HEAD = "HEAD"
TTL_PRINCIPAL = "dynamodb.amazonaws.com"

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


_wiring: Wiring | None = None


def configure(wiring: Wiring | None) -> None:
    """Use ``wiring`` for the following invocations (None: build one from the environment)."""
    global _wiring
    _wiring = wiring


def get_log() -> DynamoDBLog:
    """The log of the container's wiring, built on first use."""
    global _wiring
    if _wiring is None:
        _wiring = build()
    return _wiring.log


def record_handler(record: DynamoDBRecord) -> None:
    """Sweep the partition of one expired head (other records are ignored)."""
    if not is_expired_head(record.raw_event):
        return
    pk = record.raw_event["dynamodb"]["Keys"][PARTITION_KEY]["S"]
    log = get_log()
    deleted = log.purge(pk.removeprefix("EX#"), keep_listed_from=_after_start(record, log))
    metrics.add_metric(name="ItemsSwept", unit=MetricUnit.Count, value=deleted)
    logger.info("swept an expired execution", extra={"pk": pk, "items": deleted})


def _after_start(record: DynamoDBRecord, log: DynamoDBLog) -> float:
    """Just after the expired execution's start: a listing entry from then on is a newer one's.

    A new execution under the name puts its listing entry just before its head, so a late
    or repeated record's purge could otherwise delete it. Without the old image's date: a
    retention ago (an expired execution started before then).
    """
    old = record.raw_event["dynamodb"].get("OldImage", {})
    try:
        return float(old["start_date"]["N"]) + 0.001
    except (KeyError, TypeError, ValueError):
        return log.clock() - log.retention_seconds


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """The Lambda entry point (DynamoDB stream, partial batch failures)."""
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
