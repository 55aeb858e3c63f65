"""Live updates: a WebSocket API streaming executions' history events as they commit.

``$connect`` is IAM-authorized (SigV4 for ``execute-api``, as the REST API);
``subscribe`` and ``$disconnect`` go to one function (``functions/live``), which
records connections and subscriptions on the log table (``LIVEC#``/``LIVE#``
items: conditional writes, a TTL). The hooks dispatcher runs the ``live`` hook
(:mod:`stepflow.live.websocket`), which pushes each subscriber the events after
its last one. Both functions may ``execute-api:ManageConnections`` on this API's
stage only, read only the table's ``EX#*`` and ``LIVE*`` items and write only the
``LIVE*`` ones (``dynamodb:LeadingKeys``). The live function gets the API's access
policy: ``subscribe`` checks it.
See docs/live.md.
"""

from __future__ import annotations

import jsii
from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from cdk_nag import NagSuppressions
from constructs import Construct
from stepflow.aws import topology
from stepflow.live.websocket import ENDPOINT_ENV_VAR

from stepflow_cdk.compute import ACCESS_POLICY_ENV_VAR, Compute, table_environment
from stepflow_cdk.hooks import Hooks
from stepflow_cdk.hooks_config import HOOKS_ENV_VAR, HooksConfig
from stepflow_cdk.storage import Storage

FOLDER = "live"
"""The function's folder under functions/ (its name is ``<stack name>-live``)."""
SERVICE = "stepflow-live"
STAGE = "v1"
TIMEOUT_SECONDS = 30
"""A subscribe pushes the backlog (the history so far): API Gateway waits 29 s at most."""
RATE_LIMIT = 50
"""Steady WebSocket messages per second on the stage (connects and subscribes)."""
BURST_LIMIT = 100
LIVE_KEYS = ["LIVE*"]
"""The partition keys the live functions may write: ``LIVEC#<connection>``, ``LIVE#<arn>``,
``LIVE`` (whether anyone subscribed)."""
READ_KEYS = ["EX#*", *LIVE_KEYS]
"""The partition keys they may read: an execution's head and history, and the above."""
WRITES = [
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
]
READS = ["dynamodb:GetItem", "dynamodb:Query"]


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogs:
    """The stage's access logs: API Gateway's default format, to ``destination``."""

    def __init__(self, destination: apigwv2.IAccessLogDestination) -> None:
        self._destination = destination

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        """Where the access logs go."""
        return self._destination

    @property
    def format(self) -> None:
        """None: API Gateway's default format."""
        return None


class Live(Construct):
    """``api`` and ``stage``: the WebSocket API; ``function``: its routes (see the module doc).

    Turns the ``live`` hook on in ``hooks``' dispatcher and grants it the pushes.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: Storage,
        compute: Compute,
        hooks: Hooks,
        hooks_config: HooksConfig,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        environment = table_environment(storage)
        if compute.access_policy:  # subscribe checks it, as the API does
            environment[ACCESS_POLICY_ENV_VAR] = compute.access_policy
        self.function = compute.function("Live", FOLDER, TIMEOUT_SECONDS, environment, SERVICE)
        routes = integrations.WebSocketLambdaIntegration("Routes", self.function)
        self.api = apigwv2.WebSocketApi(
            self,
            "Api",
            description="StepFlow: executions' history events as they commit",
            route_selection_expression="$request.body.action",
            connect_route_options=apigwv2.WebSocketRouteOptions(
                integration=routes, authorizer=authorizers.WebSocketIamAuthorizer()
            ),
            disconnect_route_options=apigwv2.WebSocketRouteOptions(integration=routes),
        )
        self.api.add_route("subscribe", integration=routes)
        self.api.add_route("unsubscribe", integration=routes)
        access_logs = logs.LogGroup(self, "AccessLogs", retention=logs.RetentionDays.ONE_MONTH)
        self.stage = apigwv2.WebSocketStage(
            self,
            "Stage",
            web_socket_api=self.api,
            stage_name=STAGE,
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=RATE_LIMIT, burst_limit=BURST_LIMIT),
            access_log_settings=_AccessLogs(apigwv2.LogGroupLogDestination(access_logs)),
        )
        connections = stack.format_arn(
            service="execute-api",
            resource=self.api.api_id,
            resource_name=f"{STAGE}/POST/@connections/*",
        )
        hooks.function.add_environment(ENDPOINT_ENV_VAR, self.stage.callback_url)
        hooks.function.add_environment(HOOKS_ENV_VAR, ",".join((*hooks_config.hooks, "live")))
        for function in (self.function, hooks.function):
            self._grant(function, storage, connections)
        CfnOutput(stack, "LiveUrl", value=self.stage.url)
        NagSuppressions.add_resource_suppressions(
            self.api,
            [
                {
                    "id": "AwsSolutions-APIG4",
                    "reason": "A WebSocket API authorizes once, on $connect (IAM, SigV4); "
                    "subscribe and $disconnect travel on that authorized connection.",
                }
            ],
            apply_to_children=True,
        )

    def _grant(self, function: lambda_.Function, storage: Storage, connections: str) -> None:
        # Reads: an execution's head and history (EX#...), the subscriptions (LIVE#...).
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=READS,
                resources=[storage.table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": READ_KEYS}},
            )
        )
        # Writes: the connection and subscription items only.
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=WRITES,
                resources=[storage.table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": LIVE_KEYS}},
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[storage.payloads.arn_for_objects(f"{topology.PAYLOAD_PREFIX}*")],
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["execute-api:ManageConnections"], resources=[connections])
        )
        assert function.role is not None
        NagSuppressions.add_resource_suppressions(
            function.role,
            [
                {
                    "id": "AwsSolutions-IAM5",
                    "reason": "execute-api:ManageConnections on this API's stage's "
                    "POST/@connections/*: the connection ids are made at run time; the "
                    "payload bucket's payloads/* (offloaded history items).",
                    "appliesTo": [
                        {"regex": "/^Resource::arn:.*:execute-api:.*@connections/\\*$/g"},
                        {"regex": "/^Resource::.*payloads/\\*$/g"},
                    ],
                }
            ],
            apply_to_children=True,
        )
