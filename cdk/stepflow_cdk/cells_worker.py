"""A Fargate service running ``stepflow worker --cells``, built with no Docker at synth.

No image is built: the task runs two public images, pinned by tag (pass
``image=`` pinned by digest for a production deployment):

- ``Fetch`` (the AWS CLI image) copies the bundle, an S3 asset built locally
  like the layer (stepflow, its manylinux wheels and the cells module), into a
  task volume, then exits;
- ``Worker`` (the Python image, read-only root filesystem) unzips it with the
  standard library and execs the worker. Nothing is pip-installed at start: the
  wheels were chosen at synth, so every task runs the same code.

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

from aws_cdk import AssetHashType, BundlingOptions, DockerImage, Duration, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from cdk_nag import NagSuppressions
from constructs import Construct
from stepflow.aws import topology

from stepflow_cdk.cells_source import CellsBundling, CellsSource
from stepflow_cdk.stack import StepFlowStack

PYTHON_IMAGE = "public.ecr.aws/docker/library/python:3.12.8-slim-bookworm"
"""The worker's image: the Python the bundle's wheels are built for (3.12, x86_64, glibc)."""
FETCH_IMAGE = "public.ecr.aws/aws-cli/aws-cli:2.27.26"
"""Copies the bundle from S3 (``aws s3 cp``) into the task volume."""
HEALTH_PORT = 8080
APP = "/app"

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
    """What the worker container runs: unpack the bundle, then exec the worker.

    ``stepflow worker --cells --queue`` (docs/cells-workers.md) reads the table from
    ``TABLE_NAME`` and the API from ``STEPFLOW_ENDPOINT``; an API Gateway endpoint is
    signed for ``execute-api``.
    """
    return [
        "set -e; "
        f"mkdir -p {APP}/tmp {APP}/code; "
        f"python -m zipfile -e {APP}/bundle.zip {APP}/code; "
        f"exec python -m stepflow worker --cells {module} --queue {queue} "
        f"--health-port {HEALTH_PORT}"
    ]


class CellsWorker(Construct):
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
        super().__init__(scope, construct_id)
        if desired_count < 0:
            raise ValueError(f"desired_count must be 0 or more, not {desired_count}")
        stack = Stack.of(self)
        self.bundle = s3_assets.Asset(
            self,
            "Bundle",
            path=str(source.path if source.path.is_dir() else source.path.parent),
            asset_hash_type=AssetHashType.CUSTOM,
            asset_hash=source.fingerprint("worker", source.import_name, str(stepflow.bundle)),
            bundling=BundlingOptions(
                image=DockerImage.from_registry("unused-local-bundling"),
                local=CellsBundling(source, subdir="", with_stepflow=True, install=stepflow.bundle),
            ),
        )
        public = vpc is None
        if vpc is None:
            vpc = ec2.Vpc(
                self,
                "Vpc",
                max_azs=2,
                nat_gateways=0,
                restrict_default_security_group=False,
                subnet_configuration=[
                    ec2.SubnetConfiguration(
                        name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24
                    )
                ],
                flow_logs={"All": ec2.FlowLogOptions()},
            )
        self.cluster = ecs.Cluster(
            self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENABLED
        )
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=512,
            memory_limit_mib=1024,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
            volumes=[ecs.Volume(name="app")],
        )
        self.task_role = self.task_definition.task_role
        log_group = logs.LogGroup(self, "Logs", retention=logs.RetentionDays.ONE_MONTH)
        mount = ecs.MountPoint(container_path=APP, source_volume="app", read_only=False)
        fetch = self.task_definition.add_container(
            "Fetch",
            image=ecs.ContainerImage.from_registry(FETCH_IMAGE),
            command=[
                "s3",
                "cp",
                "--only-show-errors",
                self.bundle.s3_object_url,
                f"{APP}/bundle.zip",
            ],
            environment={"AWS_DEFAULT_REGION": stack.region},
            essential=False,
            logging=ecs.LogDrivers.aws_logs(stream_prefix="fetch", log_group=log_group),
        )
        fetch.add_mount_points(mount)
        self.container = self.task_definition.add_container(
            "Worker",
            image=ecs.ContainerImage.from_registry(image or PYTHON_IMAGE),
            entry_point=["sh", "-c"],
            command=worker_command(source.import_name, queue),
            environment={
                "PYTHONPATH": f"{APP}/code",
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONUNBUFFERED": "1",
                "TMPDIR": f"{APP}/tmp",
                "AWS_DEFAULT_REGION": stack.region,
                "STEPFLOW_ENDPOINT": stepflow.api.rest_api.url,
                "STEPFLOW_CELLS": source.import_name,
                # The stack's own resources, which the cells' AWS effects may never name
                # (the worker reads them as a stepper does: stepflow.aws.own_resources).
                **stepflow.compute.own_resources_environment,
                topology.TABLE_ENV_VAR: stepflow.storage.table.table_name,
            },
            readonly_root_filesystem=True,
            stop_timeout=Duration.seconds(60),  # the worker drains for up to --grace (30 s)
            health_check=ecs.HealthCheck(
                command=[
                    "CMD",
                    "python",
                    "-c",
                    "import urllib.request; urllib.request.urlopen("
                    f"'http://127.0.0.1:{HEALTH_PORT}/health', timeout=3)",
                ],
                start_period=Duration.seconds(60),
            ),
            logging=ecs.LogDrivers.aws_logs(stream_prefix="worker", log_group=log_group),
        )
        self.container.add_mount_points(mount)
        self.container.add_container_dependencies(
            ecs.ContainerDependency(
                container=fetch, condition=ecs.ContainerDependencyCondition.SUCCESS
            )
        )
        security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="StepFlow cells worker: no inbound; outbound HTTPS to AWS and targets",
            allow_all_outbound=True,
        )
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=self.task_definition,
            desired_count=desired_count,
            assign_public_ip=public,
            vpc_subnets=ec2.SubnetSelection(
                subnet_type=ec2.SubnetType.PUBLIC if public else ec2.SubnetType.PRIVATE_WITH_EGRESS
            ),
            security_groups=[security_group],
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            min_healthy_percent=100,
        )
        # The bundle's one object (Asset.grant_read would open the whole assets bucket).
        self.task_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[
                    f"arn:{stack.partition}:s3:::{self.bundle.s3_bucket_name}/"
                    f"{self.bundle.s3_object_key}"
                ],
            )
        )
        for statement in worker_statements(stepflow):
            self.task_role.add_to_principal_policy(statement)
        NagSuppressions.add_resource_suppressions(
            self.task_definition,
            [
                {
                    "id": "AwsSolutions-ECS2",
                    "reason": "The variables are names, ARNs and URLs (table, queues, bucket, "
                    "functions, the signing secret's ARN, API, module), no secret value: "
                    "the worker signs its calls with the task role.",
                }
            ],
        )


def worker_statements(stepflow: StepFlowStack) -> list[iam.PolicyStatement]:
    """The task role's rights on the StepFlow stack (the cells' own come from ``grants``)."""
    api = stepflow.api.rest_api
    return [
        # The Step Functions API (GetActivityTask, SendTask*, heartbeats): one method.
        iam.PolicyStatement(
            actions=["execute-api:Invoke"],
            resources=[api.arn_for_execute_api("POST", "/", api.deployment_stage.stage_name)],
        ),
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
