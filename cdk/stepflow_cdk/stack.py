"""The StepFlow stack: storage, queues, functions, API and monitoring."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct
from stepflow.api.access import AccessPolicy
from stepflow.aws import topology

from stepflow_cdk.api import Api
from stepflow_cdk.compute import Compute
from stepflow_cdk.hooks import FOLDER as HOOKS_FOLDER
from stepflow_cdk.hooks import HookQueues, Hooks
from stepflow_cdk.hooks_config import HooksConfig
from stepflow_cdk.live import FOLDER as LIVE_FOLDER
from stepflow_cdk.live import Live
from stepflow_cdk.monitoring import Monitoring
from stepflow_cdk.nag import suppress
from stepflow_cdk.queues import Queues
from stepflow_cdk.signing import SigningKey
from stepflow_cdk.storage import Storage

MAX_POLICY_BYTES = 3072
"""The access policy travels in the API function's environment, which Lambda caps at 4 KB
for all variables together; the rest is left to the other settings."""


class StepFlowStack(Stack):
    """Everything ``cdk deploy`` creates; ``bundle=False`` packages the layer without pip.

    ``access_policy``: who may act on which state machines through the API, as
    rules ``{"principals": [...], "actions": [...], "stateMachines": [...]}``
    (``*`` patterns; see docs/security.md). None: IAM decides alone.
    ``hooks``: the hooks dispatcher on the table's stream (default: metrics only;
    ``HooksConfig(hooks=())``: none; see docs/hooks.md).
    ``live``: the WebSocket API streaming executions' events (needs the hooks
    dispatcher; see docs/live.md).
    ``claims_in_events``: False keeps every task group's lease in its own item (the first
    of two deploys of an upgrade from before issue 18's round 10; see docs/deploy.md).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bundle: bool = True,
        access_policy: Sequence[Mapping[str, Any]] | None = None,
        hooks: HooksConfig | None = None,
        live: bool = False,
        claims_in_events: bool = True,
    ) -> None:
        super().__init__(scope, construct_id, description="StepFlow workflow engine")
        self.bundle = bundle
        self.storage = Storage(self, "Storage")
        self.queues = Queues(self, "Queues")
        self.signing = SigningKey(self, "Signing")
        hooks = hooks if hooks is not None else HooksConfig()
        self.hook_queues = HookQueues(self, "HookQueues", config=hooks) if hooks.enabled else None
        if live and self.hook_queues is None:
            raise ValueError("live updates are pushed by the hooks dispatcher: turn a hook on")
        self.compute = Compute(
            self,
            "Compute",
            storage=self.storage,
            queues=self.queues,
            signing=self.signing,
            bundle=bundle,
            access_policy=policy_json(access_policy),
            other_functions=([HOOKS_FOLDER] if self.hook_queues else [])
            + ([LIVE_FOLDER] if live else []),
            other_queues=self.hook_queues.queues if self.hook_queues else [],
            claims_in_events=claims_in_events,
        )
        self.hooks = (
            Hooks(
                self,
                "Hooks",
                config=hooks,
                queues=self.hook_queues,
                storage=self.storage,
                compute=self.compute,
            )
            if self.hook_queues
            else None
        )
        self.live = (
            Live(
                self,
                "Live",
                storage=self.storage,
                compute=self.compute,
                hooks=self.hooks,
                hooks_config=hooks,
            )
            if live and self.hooks is not None
            else None
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
                **({"Hooks": self.hooks.function} if self.hooks else {}),
                **({"Live": self.live.function} if self.live else {}),
            },
            queues=self.queues.queues,
            dead_letters={
                **self.queues.dead_letters,
                "SweeperFailures": self.compute.sweeper_failures,
                **(self.hook_queues.dead_letters if self.hook_queues else {}),
            },
        )
        transitions = self.queues.queues[topology.TRANSITIONS_QUEUE.logical_name]
        CfnOutput(self, "ApiUrl", value=self.api.rest_api.url)
        CfnOutput(self, "TableName", value=self.storage.table.table_name)
        CfnOutput(self, "QueueUrl", value=transitions.queue_url)
        CfnOutput(self, "PayloadBucket", value=self.storage.payloads.bucket_name)
        # The roles workflow roles must trust (see examples/roles and docs/security-roles.md).
        for name, function in (("Stepper", self.compute.stepper), ("Runner", self.compute.runner)):
            assert function.role is not None
            CfnOutput(
                self,
                f"{name}RoleArn",
                value=function.role.role_arn,
                export_name=f"{self.stack_name}-{name}RoleArn",
            )
        suppress(self)


def policy_json(rules: Sequence[Mapping[str, Any]] | None) -> str:
    """The rules as the API's ``STEPFLOW_ACCESS_POLICY`` (checked now: a bad policy fails synth)."""
    if rules is None:
        return ""
    text = json.dumps(list(rules), separators=(",", ":"))
    AccessPolicy.from_json(text)
    if len(text.encode()) > MAX_POLICY_BYTES:
        raise ValueError(
            f"the access policy is {len(text.encode())} bytes as JSON; Lambda's environment "
            f"holds 4 KB in all, so at most {MAX_POLICY_BYTES} bytes (use patterns)"
        )
    return text
