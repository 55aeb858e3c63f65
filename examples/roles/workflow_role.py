"""A workflow role for StepFlow: the role an execution's tasks run with.

StepFlow's stepper and runner assume the execution's ``roleArn`` (or a state's
``Credentials.RoleArn``) through STS before every integration call, so a
workflow can do exactly what its role allows. Such a role needs:

- a path of ``/stepflow/``: the stepper and runner may assume nothing else;
- a trust policy naming the stepper's and runner's roles (nothing else);
- the permissions its tasks need, here ``lambda:InvokeFunction`` on named functions.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

PATH = "/stepflow/"


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
