"""AWS adapters of the runtime's ports; the only package that talks to boto3.

Nothing here creates a client at import time.
"""

from stepflow.aws.dynamodb_log import (
    DynamoDBLog,
    LogIntegrityError,
    LogUnavailableError,
    PayloadTooLargeError,
    create_table,
)
from stepflow.aws.s3_payloads import S3PayloadStore

__all__ = [
    "DynamoDBLog",
    "LogIntegrityError",
    "LogUnavailableError",
    "PayloadTooLargeError",
    "S3PayloadStore",
    "create_table",
]
