"""A workflow role for StepFlow: the role an execution's tasks run with.

StepFlow's stepper and runner assume the execution's ``roleArn`` (or a state's
``Credentials.RoleArn``) through STS before every integration call, so a
workflow can do exactly what its role allows. Such a role needs:

- a path of ``/stepflow/``: the stepper and runner may assume nothing else;
- a trust policy naming the stepper's and runner's roles (nothing else);
- the permissions its tasks need, here ``lambda:InvokeFunction`` on named functions;
  :meth:`WorkflowRole.allow_nested_executions` and :meth:`WorkflowRole.allow_distributed_map`
  add what nested executions and a distributed Map need (docs/security-roles.md).

``aws_compatible`` adds what Step Functions itself needs and StepFlow does not use
(``states:DescribeExecution``/``StopExecution`` and the EventBridge rule of ``.sync``,
AWS's documented policy), so that one role runs the workflow on either.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

PATH = "/stepflow/"
SYNC_RULE = "StepFunctionsGetEventsForStepFunctionsExecutionRule"
"""The EventBridge rule Step Functions manages for ``.sync`` starts (AWS only)."""


class WorkflowRole(Construct):
    """An IAM role under ``/stepflow/`` that StepFlow may assume to run a workflow's tasks.

    ``trusted_role_arns``: the StepFlow stack's stepper and runner roles (its
    ``StepperRoleArn`` and ``RunnerRoleArn`` outputs). ``functions``: the names of
    the Lambda functions the workflow invokes (any version or alias of each).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        trusted_role_arns: Sequence[str],
        functions: Sequence[str],
        role_name: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.role = iam.Role(
            self,
            "Role",
            role_name=role_name,
            path=PATH,
            assumed_by=iam.CompositePrincipal(*(iam.ArnPrincipal(a) for a in trusted_role_arns)),
            description="Runs StepFlow workflow tasks (assumed by StepFlow's stepper and runner)",
        )
        arns = [
            f"arn:{stack.partition}:lambda:{stack.region}:{stack.account}:function:{name}"
            for name in functions
        ]
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"],
                resources=[*arns, *(f"{arn}:*" for arn in arns)],
            )
        )

    def allow_nested_executions(
        self, state_machines: Sequence[str], *, aws_compatible: bool = False
    ) -> None:
        """Let the workflow's Tasks start executions of ``state_machines`` (names), any pattern.

        StepFlow needs ``states:StartExecution`` on each machine (and its versions and
        aliases), which the deployed stack checks against this role through IAM before it
        starts a child. A ``.sync`` child's end and a parent's stop reach the child inside
        StepFlow, so ``DescribeExecution``, ``StopExecution`` and the EventBridge rule are
        only added with ``aws_compatible``.
        """
        stack = Stack.of(self)
        states = f"arn:{stack.partition}:states:{stack.region}:{stack.account}"
        machines = [f"{states}:stateMachine:{name}" for name in state_machines]
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["states:StartExecution"],
                resources=[*machines, *(f"{arn}:*" for arn in machines)],
            )
        )
        if not aws_compatible:
            return
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution", "states:StopExecution"],
                resources=[f"{states}:execution:{name}:*" for name in state_machines],
            )
        )
        events = f"arn:{stack.partition}:events:{stack.region}:{stack.account}"
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[f"{events}:rule/{SYNC_RULE}"],
            )
        )

    def allow_distributed_map(
        self,
        state_machine: str,
        *,
        read: Sequence[tuple[str, str]] = (),
        write: Sequence[tuple[str, str]] = (),
        aws_compatible: bool = False,
    ) -> None:
        """Let a distributed Map of ``state_machine`` read and write its S3 objects.

        ``read``: ``(bucket, key pattern)`` its ItemReader reads (``s3:GetObject``; and
        ``s3:ListBucket`` on the bucket, for ``listObjectsV2`` and manifests); ``write``:
        ``(bucket, prefix)`` its ResultWriter writes under (``s3:PutObject`` and
        ``s3:AbortMultipartUpload``: large result files are multipart uploads). StepFlow
        reads and writes them with this role. It starts the map's child executions itself
        (no StartExecution call), so ``states:StartExecution`` on the map's own machine and
        ``DescribeExecution``/``StopExecution`` on its children are ``aws_compatible`` only.
        """
        for bucket, pattern in read:
            arn = f"arn:{Stack.of(self).partition}:s3:::{bucket}"
            self.role.add_to_policy(
                iam.PolicyStatement(actions=["s3:GetObject"], resources=[f"{arn}/{pattern}"])
            )
            self.role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[arn]))
        for bucket, prefix in write:
            arn = f"arn:{Stack.of(self).partition}:s3:::{bucket}"
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                    resources=[f"{arn}/{prefix.rstrip('/')}/*"],
                )
            )
        if not aws_compatible:
            return
        stack = Stack.of(self)
        states = f"arn:{stack.partition}:states:{stack.region}:{stack.account}"
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["states:StartExecution"],
                resources=[f"{states}:stateMachine:{state_machine}"],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution", "states:StopExecution"],
                resources=[f"{states}:execution:{state_machine}/*"],
            )
        )
