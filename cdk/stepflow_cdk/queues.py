"""The SQS queues of stepflow.aws.topology, each with its dead-letter queue."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from stepflow.aws import topology


class Queues(Construct):
    """``queues[spec.logical_name]`` and ``dead_letters[spec.logical_name]`` per spec."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.queues: dict[str, sqs.Queue] = {}
        self.dead_letters: dict[str, sqs.Queue] = {}
        for spec in topology.QUEUES:
            dead = sqs.Queue(
                self,
                f"{spec.logical_name}Dlq",
                retention_period=Duration.seconds(spec.dlq_retention_seconds),
                encryption=sqs.QueueEncryption.SQS_MANAGED,
                enforce_ssl=True,
            )
            self.dead_letters[spec.logical_name] = dead
            self.queues[spec.logical_name] = sqs.Queue(
                self,
                spec.logical_name,
                visibility_timeout=Duration.seconds(spec.visibility_timeout),
                encryption=sqs.QueueEncryption.SQS_MANAGED,
                enforce_ssl=True,
                dead_letter_queue=sqs.DeadLetterQueue(
                    queue=dead, max_receive_count=spec.max_receive_count
                ),
            )
