"""The Step Functions JSON protocol on a RestApi: ``POST /``, IAM (SigV4) auth, throttled."""

from __future__ import annotations

from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

RATE_LIMIT = 200
"""Steady requests per second per stage (API Gateway throttling)."""
BURST_LIMIT = 400


class Api(Construct):
    """``rest_api``: one method, ``POST /``, proxied to the API function."""

    def __init__(self, scope: Construct, construct_id: str, *, function: lambda_.IFunction) -> None:
        super().__init__(scope, construct_id)
        access_logs = logs.LogGroup(self, "AccessLogs", retention=logs.RetentionDays.ONE_MONTH)
        self.rest_api = apigateway.RestApi(
            self,
            "StepFunctionsApi",
            description="StepFlow: the AWS Step Functions API (JSON protocol)",
            cloud_watch_role=True,
            deploy_options=apigateway.StageOptions(
                stage_name="v1",
                throttling_rate_limit=RATE_LIMIT,
                throttling_burst_limit=BURST_LIMIT,
                tracing_enabled=True,
                logging_level=apigateway.MethodLoggingLevel.ERROR,
                access_log_destination=apigateway.LogGroupLogDestination(access_logs),
                access_log_format=apigateway.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
            ),
        )
        validator = self.rest_api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        self.rest_api.root.add_method(
            "POST",
            apigateway.LambdaIntegration(function, proxy=True),
            authorization_type=apigateway.AuthorizationType.IAM,
            request_validator=validator,
            request_parameters={"method.request.header.X-Amz-Target": True},
        )
