"""The coordination log table and the payload bucket, built from stepflow.aws.topology."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct
from stepflow.aws import topology


class Storage(Construct):
    """``table``: the log (on-demand, PITR, TTL, stream); ``payloads``: large documents."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        string = dynamodb.AttributeType.STRING
        self.table = dynamodb.Table(
            self,
            topology.TABLE_LOGICAL_NAME,
            partition_key=dynamodb.Attribute(name=topology.PARTITION_KEY, type=string),
            sort_key=dynamodb.Attribute(name=topology.SORT_KEY, type=string),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=topology.TTL_ATTRIBUTE,
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.table.add_global_secondary_index(
            index_name=topology.LIST_INDEX,
            partition_key=dynamodb.Attribute(name=topology.LIST_INDEX_PK, type=string),
            sort_key=dynamodb.Attribute(name=topology.LIST_INDEX_SK, type=string),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        self.table.add_global_secondary_index(
            index_name=topology.RUNNING_INDEX,
            partition_key=dynamodb.Attribute(name=topology.RUNNING_INDEX_PK, type=string),
            sort_key=dynamodb.Attribute(name=topology.RUNNING_INDEX_SK, type=string),
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.payloads = s3.Bucket(
            self,
            "Payloads",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="payloads/",
            # No expiry of payloads/: a payload object is content-addressed, so one object
            # may back several executions and large definitions; an age says nothing about
            # whether something still references it (see docs/security-retention.md).
            # messages/ holds queue bodies over SQS's limit (stepflow.runtime.offload):
            # referenced only by a queue message, which SQS keeps 14 days at most.
            lifecycle_rules=[
                s3.LifecycleRule(
                    prefix=topology.PAYLOAD_PREFIX,
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                ),
                s3.LifecycleRule(
                    prefix=topology.MESSAGE_PREFIX,
                    expiration=Duration.days(topology.MESSAGE_EXPIRY_DAYS),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                ),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
