"""A Fargate service running ``stepflow worker`` from a zip bundle: no Docker at synth.

Shared by the cells worker (:mod:`stepflow_cdk.cells_worker`) and the activity
worker (:mod:`stepflow_cdk.workers`). No image is built: the task runs two
public images, pinned by tag (pass ``image=`` pinned by digest for a
production deployment):

- ``Fetch`` (the AWS CLI image) copies the bundle, an S3 asset built locally
  (stepflow, its manylinux wheels and the user's code), into a task volume,
  then exits;
- ``Worker`` (the Python image, read-only root filesystem) unzips it with the
  standard library and execs the worker. Nothing is pip-installed at start: the
  wheels were chosen at synth, so every task runs the same code.

The task role may read its bundle's one object; each worker adds its own rights.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence

from aws_cdk import AssetHashType, BundlingOptions, DockerImage, Duration, ILocalBundling, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from cdk_nag import NagSuppressions
from constructs import Construct

PYTHON_IMAGE = "public.ecr.aws/docker/library/python:3.12.8-slim-bookworm"
"""The worker's image: the Python the bundle's wheels are built for (3.12, x86_64, glibc)."""
FETCH_IMAGE = "public.ecr.aws/aws-cli/aws-cli:2.27.26"
"""Copies the bundle from S3 (``aws s3 cp``) into the task volume."""
HEALTH_PORT = 8080
APP = "/app"
MAX_STOP_SECONDS = 120
"""Fargate's longest stop timeout: SIGTERM, then SIGKILL this long after."""

Grant = iam.PolicyStatement | Callable[[iam.IGrantable], object]
"""A statement, or a ``grant_*`` method such as ``table.grant_write_data``."""

FARGATE_SIZES: dict[int, range] = {
    256: range(512, 2049, 512),
    512: range(1024, 4097, 1024),
    1024: range(2048, 8193, 1024),
    2048: range(4096, 16385, 1024),
    4096: range(8192, 30721, 1024),
    8192: range(16384, 61441, 4096),
    16384: range(32768, 122881, 8192),
}
"""Fargate's CPU units and the memory (MiB) each allows."""


def check_size(cpu: int, memory_mib: int) -> None:
    """Raise ValueError unless ``cpu``/``memory_mib`` is a Fargate task size."""
    allowed = FARGATE_SIZES.get(cpu) if type(cpu) is int else None
    if allowed is None:
        raise ValueError(f"cpu must be one of {sorted(FARGATE_SIZES)} (Fargate units), not {cpu!r}")
    if type(memory_mib) is not int or memory_mib not in allowed:
        raise ValueError(
            f"memory_mib {memory_mib!r} does not fit cpu {cpu}: Fargate allows "
            f"{allowed.start}-{allowed.stop - 1} MiB in steps of {allowed.step}"
        )


def add_grants(role: iam.IRole, grants: Sequence[Grant]) -> None:
    """Give ``role`` each of ``grants`` (a statement, or a ``grant_*`` callable)."""
    for grant in grants:
        if isinstance(grant, iam.PolicyStatement):
            role.add_to_principal_policy(grant)
        else:
            grant(role)


def invoke_statement(api: apigateway.RestApi) -> iam.PolicyStatement:
    """``execute-api:Invoke`` on the StepFlow API's one method, ``POST /`` of its stage.

    Every Step Functions operation is that method (the operation is the
    ``X-Amz-Target`` header), so IAM cannot narrow a worker to its operations.
    """
    return iam.PolicyStatement(
        actions=["execute-api:Invoke"],
        resources=[api.arn_for_execute_api("POST", "/", api.deployment_stage.stage_name)],
    )


def unpack_then(command: Sequence[str]) -> list[str]:
    """The container's ``sh -c`` script: unpack the bundle, then exec ``command``.

    Each word is shell-quoted (a CDK token, such as the API's URL, stays one word).
    """
    return [
        "set -e; "
        f"mkdir -p {APP}/tmp {APP}/code; "
        f"python -m zipfile -e {APP}/bundle.zip {APP}/code; "
        f"exec {shlex.join(command)}"
    ]


class WorkerService(Construct):
    """A worker's bundle, cluster, task and service.

    Attributes: ``bundle``, ``cluster``, ``task_definition``, ``container``,
    ``service``, ``task_role``, ``log_group``, ``security_group``.

    ``code``: the directory the asset is made from (``bundling`` fills it, on this
    machine; ``asset_hash`` names its content). ``command``: what the worker
    container execs once the bundle is unpacked in ``/app/code`` (``PYTHONPATH``).
    ``stop_seconds``: between SIGTERM and SIGKILL (the worker drains meanwhile).
    ``vpc``: default a new VPC with public subnets only, no NAT.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: str,
        asset_hash: str,
        bundling: ILocalBundling,
        command: Sequence[str],
        environment: Mapping[str, str],
        description: str,
        desired_count: int = 1,
        cpu: int = 512,
        memory_mib: int = 1024,
        stop_seconds: int = 60,
        vpc: ec2.IVpc | None = None,
        image: str | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
    ) -> None:
        super().__init__(scope, construct_id)
        if type(desired_count) is not int or desired_count < 0:
            raise ValueError(f"desired_count must be 0 or more, not {desired_count!r}")
        check_size(cpu, memory_mib)
        if not 0 < stop_seconds <= MAX_STOP_SECONDS:
            raise ValueError(f"stop_seconds must be 1-{MAX_STOP_SECONDS}, not {stop_seconds!r}")
        stack = Stack.of(self)
        self.bundle = s3_assets.Asset(
            self,
            "Bundle",
            path=code,
            asset_hash_type=AssetHashType.CUSTOM,
            asset_hash=asset_hash,
            bundling=BundlingOptions(
                image=DockerImage.from_registry("unused-local-bundling"), local=bundling
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
            cpu=cpu,
            memory_limit_mib=memory_mib,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
            volumes=[ecs.Volume(name="app")],
        )
        self.task_role = self.task_definition.task_role
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention)
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
            logging=ecs.LogDrivers.aws_logs(stream_prefix="fetch", log_group=self.log_group),
        )
        fetch.add_mount_points(mount)
        self.container = self.task_definition.add_container(
            "Worker",
            image=ecs.ContainerImage.from_registry(image or PYTHON_IMAGE),
            entry_point=["sh", "-c"],
            command=unpack_then(command),
            environment={
                "PYTHONPATH": f"{APP}/code",
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONUNBUFFERED": "1",
                "TMPDIR": f"{APP}/tmp",
                "AWS_DEFAULT_REGION": stack.region,
                **environment,
            },
            readonly_root_filesystem=True,
            stop_timeout=Duration.seconds(stop_seconds),
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
            logging=ecs.LogDrivers.aws_logs(stream_prefix="worker", log_group=self.log_group),
        )
        self.container.add_mount_points(mount)
        self.container.add_container_dependencies(
            ecs.ContainerDependency(
                container=fetch, condition=ecs.ContainerDependencyCondition.SUCCESS
            )
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description=description,
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
            security_groups=[self.security_group],
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
        NagSuppressions.add_resource_suppressions(
            self.task_definition,
            [
                {
                    "id": "AwsSolutions-ECS2",
                    "reason": "The variables are names, ARNs and URLs (the API, the code's "
                    "module, the stack's resources), no secret value: the worker signs its "
                    "calls with the task role.",
                }
            ],
        )
