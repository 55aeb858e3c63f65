"""The AWS resources StepFlow runs on, described once.

The CDK stack (``cdk/``), the local stack (``stepflow local``) and the tests
all build the table and queues from these specs, and a test checks the
synthesized template against them, so the three cannot drift apart.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from stepflow.aws.sqs_bus import (
    DLQ_RETENTION_SECONDS,
    MAX_RECEIVE_COUNT,
    RUNNER_FUNCTION_TIMEOUT,
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
LISTED = "listed"
"""Head attribute of a map run's child: ``EXL#<map run arn>``, what it is listed under.

Not an index key: executions are listed through their ``LIST`` entries
(:mod:`stepflow.aws.log_listing`), so that a head's writes copy nothing to the index."""

RUNNING_INDEX = "gsi2"
"""A sparse index of the heads of running executions, for the outbox repair job.

Only a RUNNING head carries its keys (``run_pk`` = ``RUN#<shard>``, ``run_sk``
= the execution ARN), and they never change while it runs; the projection is
KEYS_ONLY. So the index costs one write when an execution starts and one when
it finishes, none per commit (DynamoDB writes an index only when its keys or
projected attributes change)."""
RUNNING_INDEX_PK = "run_pk"
RUNNING_INDEX_SK = "run_sk"
RUNNING_SHARDS = 16
"""Index partitions the running heads are spread over (by a hash of the ARN)."""
COMMITTED_AT = "committed_at"
"""Head attribute: when the head was last written (epoch seconds, the writer's clock)."""

TTL_ATTRIBUTE = "expires_at"
"""Epoch seconds after which DynamoDB may delete the item (finished executions' heads)."""

RETENTION_ENV_VAR = "STEPFLOW_RETENTION_DAYS"
"""How many days a finished execution stays readable (Step Functions keeps 90); read by
:class:`stepflow.aws.settings.Settings`."""
DEFAULT_RETENTION_DAYS = 90


def running_shard(execution_arn: str) -> str:
    """The running index's partition key of ``execution_arn`` (stable across processes)."""
    return f"RUN#{zlib.crc32(execution_arn.encode()) % RUNNING_SHARDS:02d}"


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

TASKS_QUEUE = QueueSpec(
    logical_name="Tasks",
    env_var="TASKS_QUEUE_URL",
    # The runner takes one message at a time: its timeout plus a minute, so a message
    # comes back only once its runner is surely gone (the task's lease fences the rest).
    visibility_timeout=RUNNER_FUNCTION_TIMEOUT + 60,
)
"""Inline (Lambda) task messages, consumed one at a time by the task runner function."""

QUEUES: tuple[QueueSpec, ...] = (TRANSITIONS_QUEUE, TASKS_QUEUE)

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
            for name in (
                PARTITION_KEY,
                SORT_KEY,
                LIST_INDEX_PK,
                LIST_INDEX_SK,
                RUNNING_INDEX_PK,
                RUNNING_INDEX_SK,
            )
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": LIST_INDEX,
                "KeySchema": [
                    {"AttributeName": LIST_INDEX_PK, "KeyType": "HASH"},
                    {"AttributeName": LIST_INDEX_SK, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": RUNNING_INDEX,
                "KeySchema": [
                    {"AttributeName": RUNNING_INDEX_PK, "KeyType": "HASH"},
                    {"AttributeName": RUNNING_INDEX_SK, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


PAYLOAD_BUCKET_ENV_VAR = "PAYLOAD_BUCKET"
"""The S3 bucket holding payloads too large for a log item (encrypted, private)."""

PAYLOAD_PREFIX = "payloads/"
"""Key prefix of offloaded payloads in the bucket."""

MESSAGE_PREFIX = "messages/"
"""Key prefix of queue message bodies over SQS's limit (:mod:`stepflow.runtime.offload`).
A lifecycle rule expires them after :data:`MESSAGE_EXPIRY_DAYS`."""

MESSAGE_EXPIRY_DAYS = 15
"""Days a stored message body is kept: past SQS's longest retention (14 days, the DLQs'),
so a reference still on a queue finds its body. A DLQ redrive resets a message's
retention: a reference redriven more than this many days after its first send has
lost its body (docs/limits.md, "Queue messages")."""

DEFINITION_PREFIX = "definitions/"
"""Key prefix of state machine definitions too large for a registry item (no expiry:
a state machine lives until deleted; see :mod:`stepflow.aws.dynamodb_registry`)."""

TASK_QUEUE_PREFIX_ENV_VAR = "TASK_QUEUE_PREFIX"
"""Name prefix of the activity task queues (one SQS queue and DLQ per activity, created by
CreateActivity at run time): the API and stepper roles need ``sqs:*Queue*``/``*Message*``
on ``<prefix>*`` and ``<dlq prefix>*`` (see :mod:`stepflow.aws.sqs_task_queue`)."""

TASK_QUEUE_PREFIX = "stepflow-tq-"
"""The default prefix (the DLQs' is ``stepflow-tqdlq-``)."""
