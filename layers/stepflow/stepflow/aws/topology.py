"""The AWS resources StepFlow runs on, described once.

The CDK stack (``cdk/``), the local stack (``stepflow local``) and the tests
all build the table and queues from these specs, and a test checks the
synthesized template against them, so the three cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stepflow.aws.sqs_bus import (
    DLQ_RETENTION_SECONDS,
    MAX_RECEIVE_COUNT,
    STEPPER_FUNCTION_TIMEOUT,
)

TABLE_LOGICAL_NAME = "Log"
"""The one DynamoDB table: the coordination log."""

PARTITION_KEY = "pk"
SORT_KEY = "sk"

LIST_INDEX = "gsi1"
"""A generic listing index (``gsi1pk``/``gsi1sk``): executions by state machine, etc."""
LIST_INDEX_PK = "gsi1pk"
LIST_INDEX_SK = "gsi1sk"

TTL_ATTRIBUTE = "expires_at"
"""Epoch seconds after which DynamoDB may delete the item (finished executions' heads)."""

RETENTION_ENV_VAR = "STEPFLOW_RETENTION_DAYS"
"""How many days a finished execution stays readable (Step Functions keeps 90)."""
DEFAULT_RETENTION_DAYS = 90


def retention_seconds(environ: Mapping[str, str]) -> int:
    """The retention of finished executions from ``STEPFLOW_RETENTION_DAYS`` (90 days if unset)."""
    text = environ.get(RETENTION_ENV_VAR, "").strip()
    if not text:
        return DEFAULT_RETENTION_DAYS * 86_400
    try:
        days = int(text)
    except ValueError:
        days = 0
    if days < 1:
        raise ValueError(f"{RETENTION_ENV_VAR} must be a whole number of days >= 1, not {text!r}")
    return days * 86_400


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """One SQS queue and its dead-letter queue."""

    logical_name: str
    env_var: str
    visibility_timeout: int
    max_receive_count: int = MAX_RECEIVE_COUNT
    dlq_retention_seconds: int = DLQ_RETENTION_SECONDS


TRANSITIONS_QUEUE = QueueSpec(
    logical_name="Transitions",
    env_var="QUEUE_URL",
    # Six times the consumer's timeout, as AWS recommends for Lambda event sources.
    visibility_timeout=6 * STEPPER_FUNCTION_TIMEOUT,
)

QUEUES: tuple[QueueSpec, ...] = (TRANSITIONS_QUEUE,)

TABLE_ENV_VAR = "TABLE_NAME"


def table_definition(table_name: str) -> dict[str, Any]:
    """``CreateTable`` arguments for the log table (on-demand, with the listing index)."""
    return {
        "TableName": table_name,
        "KeySchema": [
            {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"}
            for name in (PARTITION_KEY, SORT_KEY, LIST_INDEX_PK, LIST_INDEX_SK)
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": LIST_INDEX,
                "KeySchema": [
                    {"AttributeName": LIST_INDEX_PK, "KeyType": "HASH"},
                    {"AttributeName": LIST_INDEX_SK, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


PAYLOAD_BUCKET_ENV_VAR = "PAYLOAD_BUCKET"
"""The S3 bucket holding payloads too large for a log item (encrypted, private)."""

PAYLOAD_PREFIX = "payloads/"
"""Key prefix of offloaded payloads in the bucket."""

TASK_QUEUE_PREFIX_ENV_VAR = "TASK_QUEUE_PREFIX"
"""Name prefix of the activity task queues (one SQS queue and DLQ per activity, created by
CreateActivity at run time): the API and stepper roles need ``sqs:*Queue*``/``*Message*``
on ``<prefix>*`` and ``<dlq prefix>*`` (see :mod:`stepflow.aws.sqs_task_queue`)."""

TASK_QUEUE_PREFIX = "stepflow-tq-"
"""The default prefix (the DLQs' is ``stepflow-tqdlq-``)."""
