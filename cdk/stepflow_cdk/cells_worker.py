"""A Fargate service running ``stepflow worker --cells``, built with no Docker at synth.

The service itself (the bundle in S3, the pinned public images, the read-only
worker container, its health check and logs) is :class:`stepflow_cdk.fargate.WorkerService`,
shared with the activity worker.

The task role may call the API (``execute-api:Invoke`` on ``POST /`` only),
read and write the cells journal's lease records (see :func:`journal_statements`
for what IAM can and cannot narrow), read its bundle, and whatever the construct's
``grants`` add. The worker's log has no payload store (``stepflow worker --table``),
so it holds no right on the payload bucket.

The container gets the settings naming the stack's own resources (its queues,
payload bucket, functions, table, signing secret's ARN:
``Compute.own_resources_environment``) and the API's URL: the worker refuses
an AWS effect naming any of them and an HTTP effect to the API, as a stepper does.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct
from stepflow.aws import topology

from stepflow_cdk.cells_source import CellsBundling, CellsSource
from stepflow_cdk.fargate import (
    FETCH_IMAGE,
    HEALTH_PORT,
    PYTHON_IMAGE,
    WorkerService,
    invoke_statement,
)
from stepflow_cdk.stack import StepFlowStack

__all__ = [
    "FETCH_IMAGE",
    "LEASE_ATTRIBUTES",
    "PYTHON_IMAGE",
    "CellsWorker",
    "journal_statements",
    "worker_command",
    "worker_statements",
]

LEASE_ATTRIBUTES = (
    topology.PARTITION_KEY,
    topology.SORT_KEY,
    "version",
    "delivery",
    "lease_until",
    "released",
    "expired",
    "lease_seconds",
    "owner",
    "queue",
    "receipt",
    "result",
    "result_z",
    "result_ref",
)
"""Every attribute a lease record item may have (stepflow.aws.log_items.lease_draft and
the payload packer's ``_z``/``_ref`` forms of its ``result`` document)."""


def worker_command(module: str, queue: str) -> list[str]:
    """What the worker container execs once its bundle is unpacked.

    ``stepflow worker --cells --queue`` (docs/cells-workers.md) reads the table from
    ``TABLE_NAME`` and the API from ``STEPFLOW_ENDPOINT``; an API Gateway endpoint is
    signed for ``execute-api``.
    """
    return [
        "python", "-m", "stepflow", "worker",
        "--cells", module,
        "--queue", queue,
        "--health-port", str(HEALTH_PORT),
    ]  # fmt: skip


class CellsWorker(WorkerService):
    """The service: ``cluster``, ``task_definition``, ``service``, ``task_role``, ``bundle``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stepflow: StepFlowStack,
        source: CellsSource,
        queue: str,
        desired_count: int,
        vpc: ec2.IVpc | None,
        image: str | None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            code=str(source.path if source.path.is_dir() else source.path.parent),
            asset_hash=source.fingerprint("worker", source.import_name, str(stepflow.bundle)),
            bundling=CellsBundling(source, subdir="", with_stepflow=True, install=stepflow.bundle),
            command=worker_command(source.import_name, queue),
            environment={
                "STEPFLOW_ENDPOINT": stepflow.api.rest_api.url,
                "STEPFLOW_CELLS": source.import_name,
                # The stack's own resources, which the cells' AWS effects may never name
                # (the worker reads them as a stepper does: stepflow.aws.own_resources).
                **stepflow.compute.own_resources_environment,
                topology.TABLE_ENV_VAR: stepflow.storage.table.table_name,
            },
            description="StepFlow cells worker: no inbound; outbound HTTPS to AWS and targets",
            desired_count=desired_count,
            stop_seconds=60,  # the worker drains for up to --grace (30 s)
            vpc=vpc,
            image=image,
        )
        for statement in worker_statements(stepflow):
            self.task_role.add_to_principal_policy(statement)


def worker_statements(stepflow: StepFlowStack) -> list[iam.PolicyStatement]:
    """The task role's rights on the StepFlow stack (the cells' own come from ``grants``)."""
    return [
        # The Step Functions API (GetActivityTask, SendTask*, heartbeats): one method.
        invoke_statement(stepflow.api.rest_api),
        *journal_statements(stepflow),
    ]


def journal_statements(stepflow: StepFlowStack) -> list[iam.PolicyStatement]:
    """The journal's lease records: GetItem, and PutItem of lease-shaped items only.

    What IAM can narrow: the table only (no index, no Query, Scan, UpdateItem,
    DeleteItem or batch/transaction call); partitions ``EX#<execution ARN>`` of
    this account and region (``dynamodb:LeadingKeys``: executions' items, not
    state machines' or the listing items); written attributes to a lease record's
    (``dynamodb:Attributes``). What it cannot: the sort key (``TK#fx#...``), since
    condition keys see only the partition key. A worker's role could therefore
    overwrite another lease record of an execution (with a lease-shaped item) or
    read an execution's items; the journal's own writes are conditional on absence.
    """
    stack = Stack.of(stepflow)
    table = stepflow.storage.table
    partitions = f"EX#arn:{stack.partition}:states:{stack.region}:{stack.account}:*"
    leading = {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [partitions]}}
    return [
        iam.PolicyStatement(
            actions=["dynamodb:GetItem"], resources=[table.table_arn], conditions=leading
        ),
        iam.PolicyStatement(
            actions=["dynamodb:PutItem"],
            resources=[table.table_arn],
            conditions={
                **leading,
                "ForAllValues:StringEquals": {"dynamodb:Attributes": list(LEASE_ATTRIBUTES)},
            },
        ),
    ]
