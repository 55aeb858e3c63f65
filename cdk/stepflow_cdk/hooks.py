"""The hooks dispatcher: a function on the table's stream that feeds the built-in hooks.

Hooks never run inside a commit (DESIGN.md section 8): ``functions/hooks`` reads
the coordination log's stream, turns committed history events (and EXPRESS heads'
status changes) into hook events and hands them to the hooks that
``STEPFLOW_HOOKS`` turns on (``metrics``, ``eventbridge``, ``webhooks``).

:class:`HookQueues` holds what must exist before the functions are built (the
queues join ``STEPFLOW_OWN_QUEUES``, which every task function reads);
:class:`Hooks` is the function, its event source mapping and its grants, each on
one resource. :class:`HooksConfig` is the construct props, or the app's context
(``stepflow:hooks``, ...; see docs/hooks.md, "Deploying").
"""

from __future__ import annotations

import json

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagSuppressions
from constructs import Construct
from stepflow.aws import topology
from stepflow.aws.sqs_bus import DLQ_RETENTION_SECONDS

from stepflow_cdk.compute import Compute, table_environment
from stepflow_cdk.hooks_config import (
    EVENT_BUS_ENV_VAR,
    EVENT_SOURCE_ENV_VAR,
    HOOKS_ENV_VAR,
    WEBHOOK_DLQ_ENV_VAR,
    WEBHOOK_SECRET_ENV_VAR,
    WEBHOOK_URLS_ENV_VAR,
    HooksConfig,
)
from stepflow_cdk.storage import Storage

FOLDER = "hooks"
"""The function's folder under functions/ (its name is ``<stack name>-hooks``)."""

SERVICE = "stepflow-hooks"

TIMEOUT_SECONDS = 300
"""A batch may hold many executions' events and each webhook delivery retries with backoff
before dead-lettering; the sweeper's budget, well under the stream's retry cadence."""

BATCH_SIZE = 100
"""Records per invocation (the stream's default): one GetItem per execution per batch, and
one PutEvents per 10 status changes, so larger batches read and call less per record."""

RETRY_ATTEMPTS = 5
"""Retries of a failing record before it is reported to the failure queue. Hooks absorb
their own transient failures (webhooks retry and dead-letter), so a record failing five
times over minutes is broken, and holding its shard longer delays every later event."""

MAX_RECORD_AGE = Duration.hours(6)
"""Records older than this are reported to the failure queue instead of being handed to
hooks. Below the stream's 24 hours on purpose: a record the stream trims before Lambda
gives up on it vanishes without a trace, while one past this age is reported (its shard
and sequence numbers) and the table still holds its execution's history."""

LAG_ALARM = Duration.minutes(10)
"""The lag alarm's threshold: the oldest record a batch held was this old (``IteratorAge``,
maximum over 5 minutes). Hooks falling behind, a record retried, a throttled function:
each is seen here long before records reach the failure queue or age out."""

STREAM_FILTER: dict[str, list[str]] = {"eventName": ["INSERT", "MODIFY"]}
"""Deletions (TTL expiry, the sweeper's purges) never make hook events: they are
filtered out before they cost an invocation."""

STARTING_POSITIONS = {
    "LATEST": lambda_.StartingPosition.LATEST,
    "TRIM_HORIZON": lambda_.StartingPosition.TRIM_HORIZON,
}

FAILURES = "HookFailures"
"""The key of the stream records' on-failure queue in ``HookQueues.dead_letters``."""
WEBHOOK_DEAD_LETTERS = "WebhookDeadLetters"
"""The key of the webhook deliveries' dead-letter queue in ``HookQueues.dead_letters``."""

WEBHOOK_KEY_CHARACTERS = 64
"""A generated webhook signing secret: 64 letters and digits."""


def _dead_letter_queue(scope: Construct, construct_id: str) -> sqs.Queue:
    return sqs.Queue(
        scope,
        construct_id,
        retention_period=Duration.seconds(DLQ_RETENTION_SECONDS),
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
    )


class HookQueues(Construct):
    """The hooks' dead-letter queues (encrypted, TLS only), and the webhook secret.

    ``failures``: where the stream records the function failed on every retry are
    reported (their shard and sequence numbers); ``webhooks``: the deliveries that
    failed every retry (webhooks on only); ``dead_letters``: both by name, for the
    alarms; ``webhook_secret_arn``: the secret the deliveries are signed with (the
    configured one, or one generated here when webhooks are on and none is named).
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: HooksConfig) -> None:
        super().__init__(scope, construct_id)
        self.failures = _dead_letter_queue(self, "Failures")
        self.dead_letters: dict[str, sqs.Queue] = {FAILURES: self.failures}
        self.webhooks: sqs.Queue | None = None
        self.webhook_secret_arn = ""
        if "webhooks" in config.hooks:
            self.webhooks = _dead_letter_queue(self, "WebhookDeliveries")
            self.dead_letters[WEBHOOK_DEAD_LETTERS] = self.webhooks
            self.webhook_secret_arn = config.webhook_secret_arn or self._generated_secret()

    @property
    def queues(self) -> list[sqs.Queue]:
        """Every queue here (StepFlow's own: tasks may not target them)."""
        return list(self.dead_letters.values())

    def _generated_secret(self) -> str:
        secret = secretsmanager.Secret(
            self,
            "WebhookKey",
            description="StepFlow: the HMAC-SHA256 key that signs its webhook deliveries",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=WEBHOOK_KEY_CHARACTERS,
                exclude_punctuation=True,
                include_space=False,
            ),
        )
        NagSuppressions.add_resource_suppressions(
            secret,
            [
                {
                    "id": "AwsSolutions-SMG4",
                    "reason": "Shared with the webhook receivers, which verify signatures "
                    "with it: rotating it is a change on both sides, done on demand "
                    "(docs/hooks.md, Deploying), not by a rotation Lambda.",
                }
            ],
        )
        CfnOutput(Stack.of(self), "WebhookSecretArn", value=secret.secret_arn)
        return secret.secret_arn


class Hooks(Construct):
    """``function``: the dispatcher on ``storage``'s table stream, on ``compute``'s layer.

    Its role may read the stream, ``GetItem`` the table (heads), ``GetObject`` the
    payload bucket's payloads (offloaded history items), and per hook turned on
    ``PutEvents`` on the configured bus, ``GetSecretValue`` on the webhook secret,
    ``SendMessage`` to the webhook dead-letter queue: each on that one resource.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: HooksConfig,
        queues: HookQueues,
        storage: Storage,
        compute: Compute,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        environment = {
            **table_environment(storage),
            HOOKS_ENV_VAR: ",".join(config.hooks),
            **config.settings,
        }
        if "eventbridge" in config.hooks:
            environment[EVENT_BUS_ENV_VAR] = config.bus
            environment[EVENT_SOURCE_ENV_VAR] = config.source
        if queues.webhooks is not None:
            # A JSON list: a URL may hold a comma (the hooks read both forms).
            environment[WEBHOOK_URLS_ENV_VAR] = json.dumps(list(config.webhook_urls))
            environment[WEBHOOK_SECRET_ENV_VAR] = queues.webhook_secret_arn
            environment[WEBHOOK_DLQ_ENV_VAR] = queues.webhooks.queue_url
        self.function = compute.function("Hooks", FOLDER, TIMEOUT_SECONDS, environment, SERVICE)
        self.mapping = sources.DynamoEventSource(
            storage.table,
            starting_position=STARTING_POSITIONS[config.starting_position],
            batch_size=BATCH_SIZE,
            parallelization_factor=1,  # one batch per shard at a time: events stay in order
            report_batch_item_failures=True,
            bisect_batch_on_error=True,
            retry_attempts=RETRY_ATTEMPTS,
            max_record_age=MAX_RECORD_AGE,
            filters=[lambda_.FilterCriteria.filter(STREAM_FILTER)],
            on_failure=sources.SqsDlq(queues.failures),
        )
        # The mapping grants the stream reads (on this table's stream) and SendMessage
        # to the failure queue.
        self.function.add_event_source(self.mapping)
        self.lag_alarm = cloudwatch.Alarm(
            self,
            "Lag",
            metric=self.function.metric(
                "IteratorAge", statistic="Maximum", period=Duration.minutes(5)
            ),
            threshold=LAG_ALARM.to_milliseconds(),
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="Hooks are behind the table stream: events reach them late",
        )
        # Heads (one GetItem per execution per batch): never the indexes, never a write.
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["dynamodb:GetItem"], resources=[storage.table.table_arn])
        )
        # History items offloaded to the payload bucket (s3_payloads: <prefix><sha256>).
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[storage.payloads.arn_for_objects(f"{topology.PAYLOAD_PREFIX}*")],
            )
        )
        if "eventbridge" in config.hooks:
            self.function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["events:PutEvents"],
                    resources=[config.event_bus_arn(stack)],
                    # only StepFlow's own source: the function cannot pose as another
                    conditions={"StringEquals": {"events:source": config.source}},
                )
            )
        if queues.webhooks is not None:
            self.function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue"],
                    resources=[queues.webhook_secret_arn],
                )
            )
            self.function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["sqs:SendMessage"], resources=[queues.webhooks.queue_arn]
                )
            )
