"""cdk-nag suppressions, each with the reason it is acceptable."""

from __future__ import annotations

from aws_cdk import Stack
from cdk_nag import NagPackSuppression, NagSuppressions

STACK_WIDE = [
    NagPackSuppression(
        id="AwsSolutions-IAM4",
        reason="AWSLambdaBasicExecutionRole (logs) and API Gateway's CloudWatch push role are "
        "AWS's own minimal managed policies for exactly these purposes.",
        applies_to=[
            "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
            "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs",
        ],
    ),
    NagPackSuppression(
        id="AwsSolutions-IAM5",
        reason="Wildcards CDK grants generate and that cannot be narrowed: the table's own "
        "indexes (table/index/*), the payload bucket's objects (bucket/*; the hooks "
        "dispatcher reads bucket/payloads/* only), X-Ray tracing (xray:Put* needs *), "
        "ListQueues and the stream readers' dynamodb:ListStreams (neither takes a resource; "
        "their stream reads name the table's stream), the activity task queues "
        "created at run time (stepflow-tq*), the stepper and runner assuming the "
        "execution roles (sts:AssumeRole on role/stepflow/*: only roles under that path, "
        "which must also trust these two roles), and the API's "
        "iam:PassRole check, which simulates whichever principal of the account calls it "
        "(iam:SimulatePrincipalPolicy on the account's user/* and role/*, iam:GetRole on "
        "role/* to find an assumed role's ARN), and the stepper's and runner's check of a "
        "nested StartExecution, which simulates whichever role of the account a task runs "
        "with (iam:SimulatePrincipalPolicy on role/*).",
    ),
    NagPackSuppression(
        id="AwsSolutions-COG4",
        reason="The API authorizes with IAM (SigV4), as Step Functions' own API does, so "
        "boto3 and the AWS CLI work unchanged; Cognito user pools do not apply.",
    ),
    NagPackSuppression(
        id="AwsSolutions-APIG3",
        reason="WAF is an account-level choice (cost); the API is IAM-authenticated and "
        "throttled per stage.",
    ),
    NagPackSuppression(
        id="AwsSolutions-SQS3",
        reason="The flagged queues are themselves dead-letter queues (of the transition "
        "queue, of the sweeper's and the hooks dispatcher's stream records: their on-failure "
        "destinations, and of the webhook deliveries).",
    ),
    NagPackSuppression(
        id="AwsSolutions-S1",
        reason="Only the access-log bucket lacks access logging: it is the log destination.",
    ),
    NagPackSuppression(
        id="AwsSolutions-L1",
        reason="Python 3.12 is pinned on purpose: the layer's wheels are built for it and "
        "the package supports 3.11+; newer runtimes are adopted with the layer.",
    ),
]


def suppress(stack: Stack) -> None:
    """Apply the suppressions (with their reasons) to the whole stack."""
    NagSuppressions.add_stack_suppressions(stack, STACK_WIDE, apply_to_nested_stacks=True)
