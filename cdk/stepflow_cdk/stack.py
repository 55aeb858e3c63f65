"""The StepFlow stack: storage, queues, functions, API and monitoring."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from constructs import Construct
from stepflow.aws import topology

from stepflow_cdk.api import Api
from stepflow_cdk.compute import Compute
from stepflow_cdk.monitoring import Monitoring
from stepflow_cdk.nag import suppress
from stepflow_cdk.queues import Queues
from stepflow_cdk.signing import SigningKey
from stepflow_cdk.storage import Storage


class StepFlowStack(Stack):
    """Everything ``cdk deploy`` creates; ``bundle=False`` packages the layer without pip."""

    def __init__(self, scope: Construct, construct_id: str, *, bundle: bool = True) -> None:
        super().__init__(scope, construct_id, description="StepFlow workflow engine")
        self.storage = Storage(self, "Storage")
        self.queues = Queues(self, "Queues")
        self.signing = SigningKey(self, "Signing")
        self.compute = Compute(
            self,
            "Compute",
            storage=self.storage,
            queues=self.queues,
            signing=self.signing,
            bundle=bundle,
        )
        self.api = Api(self, "Api", function=self.compute.api)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            functions={
                "Stepper": self.compute.stepper,
                "Runner": self.compute.runner,
                "Api": self.compute.api,
                "Sweeper": self.compute.sweeper,
                "Repair": self.compute.repair,
            },
            queues=self.queues.queues,
            dead_letters={
                **self.queues.dead_letters,
                "SweeperFailures": self.compute.sweeper_failures,
            },
        )
        transitions = self.queues.queues[topology.TRANSITIONS_QUEUE.logical_name]
        CfnOutput(self, "ApiUrl", value=self.api.rest_api.url)
        CfnOutput(self, "TableName", value=self.storage.table.table_name)
        CfnOutput(self, "QueueUrl", value=transitions.queue_url)
        CfnOutput(self, "PayloadBucket", value=self.storage.payloads.bucket_name)
        suppress(self)
