"""Step Functions' names of SDK services, checked against botocore's models."""

from __future__ import annotations

import botocore.session
import pytest
from stepflow.integrations.aws_sdk_names import (
    RENAMED,
    boto_name,
    error_prefix,
    java_package,
    operation_name,
)


def test_the_renamed_table_is_exactly_the_services_whose_names_differ() -> None:
    # Loads every service model once (a few seconds): the table must match them all.
    session = botocore.session.get_session()
    differ = {}
    for name in session.get_available_services():
        service_id = session.get_service_model(name).metadata["serviceId"]
        package = java_package(service_id)
        if package != name.replace("-", ""):
            differ[package] = name
    aliases = {"cloudwatchevents"}  # the SDK for Java's older client of EventBridge
    assert {k: v for k, v in RENAMED.items() if k not in aliases} == differ


@pytest.mark.parametrize(
    ("service_id", "prefix"),
    [
        ("DynamoDB", "DynamoDb"),
        ("SFN", "Sfn"),
        ("S3", "S3"),
        ("Secrets Manager", "SecretsManager"),
        ("EC2", "Ec2"),
        ("IAM", "Iam"),
        ("RDS Data", "RdsData"),
        ("CloudWatch Logs", "CloudWatchLogs"),
        ("Cognito Identity Provider", "CognitoIdentityProvider"),
        ("ACM PCA", "AcmPca"),
        ("SESv2", "SesV2"),
        ("EventBridge", "EventBridge"),
        ("Lambda", "Lambda"),
        ("API Gateway", "ApiGateway"),
        ("IoT Data Plane", "IotDataPlane"),
        ("Database Migration Service", "DatabaseMigration"),
    ],
)
def test_error_prefixes_are_the_java_client_names(service_id: str, prefix: str) -> None:
    assert error_prefix(service_id) == prefix


def test_boto_names() -> None:
    assert boto_name("sfn") == "stepfunctions"
    assert boto_name("s3") == "s3"
    assert boto_name("rdsdata") == "rds-data"
    assert boto_name("eventbridge") == boto_name("cloudwatchevents") == "events"
    assert boto_name("cloudwatchlogs") == "logs"
    assert boto_name("stepfunctions") is None  # boto3's name is not Step Functions'
    assert boto_name("logs") is None
    assert boto_name("nosuch") is None


def test_operation_names() -> None:
    assert operation_name("getObject") == "GetObject"
    assert operation_name("describeDBInstances") == "DescribeDBInstances"
