"""The SQS queues of stepflow.aws.topology, each with its dead-letter queue.

Also the dead-letter queue that every activity task queue (created at run time by
:class:`stepflow.aws.sqs_task_queue.SQSTaskQueue`) shares: declared here so that it
is encrypted, TLS-only and alarmed like the others (``dead_letters["ActivityTasks"]``).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from stepflow.aws import topology
from stepflow.aws.sqs_bus import DLQ_RETENTION_SECONDS

ACTIVITY_DLQ = "ActivityTasks"
"""The key of the activity task queues' shared DLQ in ``Queues.dead_letters``."""


class Queues(Construct):
    """The topology's queues and dead-letter queues, and the activity queues' shared DLQ.

    ``queues[spec.logical_name]`` and ``dead_letters[spec.logical_name]`` per spec;
    ``activity_dead_letters`` (also ``dead_letters["ActivityTasks"]``).
    """

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
        self.activity_dead_letters = sqs.Queue(
            self,
            f"{ACTIVITY_DLQ}Dlq",
            retention_period=Duration.seconds(DLQ_RETENTION_SECONDS),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        self.dead_letters[ACTIVITY_DLQ] = self.activity_dead_letters
