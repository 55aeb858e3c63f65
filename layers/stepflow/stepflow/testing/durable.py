"""The test environment on the DynamoDB log (moto), every message through the stepper Lambda.

:func:`moto_environment` gives a :class:`~stepflow.testing.WorkflowEnvironment`
whose coordination log is :class:`stepflow.aws.DynamoDBLog` on moto (in
process) and whose messages are delivered as SQS events to the real stepper
Lambda handler. The queues stay simulated on the virtual clock, so a Wait of a
year still returns at once; the SQS adapter has its own tests against moto.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from stepflow.runtime import Message, Stepper
from stepflow.testing.environment import WorkflowEnvironment

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_METRICS_NAMESPACE": "StepFlow",
    "POWERTOOLS_METRICS_DISABLED": "true",
}


@contextmanager
def moto_environment(
    *, payload_bucket: str | None = None, **options: Any
) -> Iterator[WorkflowEnvironment]:
    """A :class:`WorkflowEnvironment` (same ``options``) on the DynamoDB log on moto.

    ``payload_bucket``: offload large documents to this S3 bucket (created on moto).
    """
    from moto import mock_aws

    from stepflow.aws import DynamoDBLog, create_table, stepper_lambda
    from stepflow.aws.clients import client as new_client
    from stepflow.aws.s3_payloads import S3PayloadStore

    context = _LambdaContext()
    made: list[WorkflowEnvironment] = []

    def deliver(stepper: Stepper, batch: list[Message]) -> list[tuple[Message, Exception | None]]:
        # Signed as the SQS bus would, verified by the handler with the bus's key.
        signer = made[0].bus.signer
        stepper_lambda.configure(stepper, signer)
        # Key order kept (not sorted as encode_message does): the parity tests compare outputs.
        records = [_sqs_record(i, json.dumps(signer.sign(m))) for i, m in enumerate(batch)]
        response = stepper_lambda.handler({"Records": records}, context)
        stepper_lambda.metrics.clear_metrics()  # disabled metrics are kept, not printed
        failed = [int(item["itemIdentifier"]) for item in response["batchItemFailures"]]
        return [(batch[i], None) for i in failed]

    with mock.patch.dict(os.environ, FAKE_ENV), mock_aws():
        dynamodb = new_client("dynamodb")
        create_table(dynamodb, "stepflow-testing")
        payloads = None
        if payload_bucket is not None:
            s3 = new_client("s3")
            s3.create_bucket(Bucket=payload_bucket)
            payloads = S3PayloadStore(payload_bucket, client=s3)
        log = DynamoDBLog("stepflow-testing", client=dynamodb, payloads=payloads)
        try:
            made.append(WorkflowEnvironment(log=log, deliver=deliver, **options))
            yield made[0]
        finally:
            stepper_lambda.configure(None)


class _LambdaContext:
    function_name = "stepflow-stepper"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:stepflow-stepper"
    aws_request_id = "stepflow-testing"


def _sqs_record(index: int, body: str) -> dict[str, Any]:
    return {
        "messageId": str(index),
        "receiptHandle": f"receipt-{index}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:stepflow-transitions",
        "awsRegion": "us-east-1",
    }
