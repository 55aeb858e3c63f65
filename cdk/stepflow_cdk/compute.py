"""The ``stepflow`` layer and the functions that share it, each with least-privilege grants."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import BundlingOptions, DockerImage, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from stepflow.aws import topology
from stepflow.aws.sqs_bus import (
    DLQ_RETENTION_SECONDS,
    RUNNER_BATCH_SIZE,
    RUNNER_FUNCTION_TIMEOUT,
    STEPPER_FUNCTION_TIMEOUT,
)
from stepflow.aws.sweeper import STREAM_FILTER

from stepflow_cdk.bundling import LayerBundling
from stepflow_cdk.paths import FUNCTIONS, LAYER_SOURCE
from stepflow_cdk.queues import Queues
from stepflow_cdk.signing import SECRET_ENV_VAR, SigningKey
from stepflow_cdk.storage import Storage

RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.X86_64  # matches the layer's manylinux2014_x86_64 wheels
API_TIMEOUT_SECONDS = 29  # API Gateway's integration limit
SWEEPER_TIMEOUT_SECONDS = 300
REPAIR_TIMEOUT_SECONDS = 300
REPAIR_SCHEDULE_MINUTES = 5
"""How often the outbox repair job runs (its cost is per run: see stepflow.aws.outbox_repair)."""


ACTIVITY_DLQ_ENV_VAR = "ACTIVITY_DLQ_ARN"
"""Names the activity task queues' shared DLQ (read by stepflow.aws.settings.Settings)."""

POWERTOOLS_ENVIRONMENT = {
    # every function's: the hooks dispatcher (stepflow_cdk.hooks) takes it too
    "POWERTOOLS_METRICS_NAMESPACE": "StepFlow",
    # Execution data and task tokens never go to X-Ray (the handlers say so too).
    "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
    "POWERTOOLS_TRACER_CAPTURE_ERROR": "false",
}

ACCESS_POLICY_ENV_VAR = "STEPFLOW_ACCESS_POLICY"


def table_environment(storage: Storage) -> dict[str, str]:
    """The settings of a function on the log table: table, payload bucket, account, Powertools.

    The hooks dispatcher's and the live function's.
    """
    return {
        topology.TABLE_ENV_VAR: storage.table.table_name,
        topology.PAYLOAD_BUCKET_ENV_VAR: storage.payloads.bucket_name,
        "STEPFLOW_ACCOUNT_ID": Stack.of(storage).account,
        **POWERTOOLS_ENVIRONMENT,
    }


"""The API's access rules (JSON; see stepflow.api.access)."""
PASS_ROLE_CHECK_ENV_VAR = "STEPFLOW_PASS_ROLE_CHECK"
NESTED_START_CHECK_ENV_VAR = "STEPFLOW_NESTED_START_CHECK"

EXECUTION_ROLE_PATH = "/stepflow/"
"""The IAM path of the roles executions (and ``Credentials``) may run tasks with: the
stepper and runner may assume ``role/stepflow/*`` only (see docs/security-roles.md)."""

FUNCTION_FOLDERS = ("stepper", "runner", "api", "sweeper", "repair")
"""Each function's folder under functions/; its name is ``<stack name>-<folder>``.
(The hooks dispatcher, ``hooks``, is built by stepflow_cdk.hooks on :meth:`Compute.function`.)"""


def function_name(stack_name: str, folder: str) -> str:
    """The physical name of a StepFlow function (``<stack name>-<folder>``).

    Known before deployment, so the functions can be told their own names (refused
    as task targets) without a circular reference.
    """
    return f"{stack_name}-{folder}"


class Compute(Construct):
    """The functions on the shared layer: ``stepper``, ``runner``, ``api``, ``sweeper``, ``repair``.

    ``stepper`` consumes the transition queue (decides, commits, sends; a short
    timeout), ``runner`` the tasks queue (one Lambda task per invocation, up to
    15 minutes), ``api`` is API Gateway's proxy, ``sweeper`` reads the table's
    stream to delete what is left of executions whose head TTL removed, and
    ``repair`` re-sends outboxes left pending, on an EventBridge schedule.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: Storage,
        queues: Queues,
        signing: SigningKey,
        bundle: bool,
        access_policy: str = "",
        other_functions: Sequence[str] = (),
        other_queues: Sequence[sqs.IQueue] = (),
        claims_in_events: bool = True,
    ) -> None:
        """The layer and functions; ``access_policy`` goes to the API.

        ``claims_in_events`` False sets ``STEPFLOW_CLAIMS_IN_EVENTS=false`` on every
        function (the first of two deploys of an upgrade, docs/deploy.md).

        ``other_functions`` (folders) and ``other_queues``: StepFlow's own resources
        built elsewhere (the hooks dispatcher and its queues), refused as task targets.
        """
        super().__init__(scope, construct_id)
        self.access_policy = access_policy
        """The API's access policy (JSON; empty: none): the live function checks it too."""
        self.layer = lambda_.LayerVersion(
            self,
            "StepFlowLayer",
            code=lambda_.Code.from_asset(
                str(LAYER_SOURCE),
                bundling=BundlingOptions(
                    image=DockerImage.from_registry("unused-local-bundling"),
                    local=LayerBundling(install=bundle),
                ),
            ),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="The stepflow package and its runtime dependencies",
        )
        transitions = queues.queues[topology.TRANSITIONS_QUEUE.logical_name]
        tasks = queues.queues[topology.TASKS_QUEUE.logical_name]
        # Where the stream records the sweeper failed on every retry are reported
        # (their shard and sequence numbers), so an alarm says that history was left.
        self.sweeper_failures = sqs.Queue(
            self,
            "SweeperFailures",
            retention_period=Duration.seconds(DLQ_RETENTION_SECONDS),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        stack_name = Stack.of(self).stack_name
        own_queues = [q.queue_name for q in queues.dead_letters.values()]
        # Everything stepflow.aws.own_resources reads: no task or effect may name these.
        self.own_resources_environment: dict[str, str] = {
            topology.TABLE_ENV_VAR: storage.table.table_name,
            topology.TRANSITIONS_QUEUE.env_var: transitions.queue_url,
            topology.TASKS_QUEUE.env_var: tasks.queue_url,
            topology.PAYLOAD_BUCKET_ENV_VAR: storage.payloads.bucket_name,
            "STEPFLOW_OWN_FUNCTIONS": ",".join(
                function_name(stack_name, f) for f in (*FUNCTION_FOLDERS, *other_functions)
            ),
            "STEPFLOW_OWN_QUEUES": ",".join(
                [
                    *own_queues,
                    self.sweeper_failures.queue_name,
                    *(q.queue_name for q in other_queues),
                ]
            ),
            SECRET_ENV_VAR: signing.secret.secret_arn,
            ACTIVITY_DLQ_ENV_VAR: queues.activity_dead_letters.queue_arn,
        }
        """The settings naming the stack's own resources (the cells worker service gets them)."""
        environment = {
            **self.own_resources_environment,
            # The account in the ARNs the API hands out (and access policies match).
            "STEPFLOW_ACCOUNT_ID": Stack.of(self).account,
            # Task calls assume the execution's role; StepFlow's own resources are refused.
            "STEPFLOW_ASSUME_ROLES": "true",
            **POWERTOOLS_ENVIRONMENT,
            **({} if claims_in_events else {"STEPFLOW_CLAIMS_IN_EVENTS": "false"}),
        }
        # A Task's nested StartExecution runs in these two (in process): IAM decides whether
        # the task's role may start the target, as on AWS (stepflow.api.nested).
        task_environment = {**environment, NESTED_START_CHECK_ENV_VAR: "iam"}
        self.stepper = self.function(
            "Stepper", "stepper", STEPPER_FUNCTION_TIMEOUT, task_environment, "stepflow-stepper"
        )
        self.runner = self.function(
            "Runner", "runner", RUNNER_FUNCTION_TIMEOUT, task_environment, "stepflow-runner"
        )
        self.runner.add_event_source(
            sources.SqsEventSource(
                tasks,
                batch_size=RUNNER_BATCH_SIZE,  # run side by side: a slow task holds no other
                report_batch_item_failures=True,
            )
        )
        api_environment = {
            **environment,
            # iam:PassRole at CreateStateMachine/UpdateStateMachine, as Step Functions does.
            PASS_ROLE_CHECK_ENV_VAR: "iam",
            **({ACCESS_POLICY_ENV_VAR: access_policy} if access_policy else {}),
        }
        self.api = self.function("Api", "api", API_TIMEOUT_SECONDS, api_environment, "stepflow-api")
        self.repair = self.function(
            "Repair",
            "repair",
            REPAIR_TIMEOUT_SECONDS,
            {
                topology.TABLE_ENV_VAR: storage.table.table_name,
                topology.TRANSITIONS_QUEUE.env_var: transitions.queue_url,
                SECRET_ENV_VAR: signing.secret.secret_arn,
                **POWERTOOLS_ENVIRONMENT,
            },
            "stepflow-outbox-repair",
        )
        events.Rule(
            self,
            "RepairSchedule",
            schedule=events.Schedule.rate(Duration.minutes(REPAIR_SCHEDULE_MINUTES)),
            targets=[targets.LambdaFunction(self.repair, retry_attempts=0)],
        )
        # The running index (Query) and the heads' outbox and commit time (BatchGetItem).
        storage.table.grant(self.repair, "dynamodb:Query", "dynamodb:BatchGetItem")
        transitions.grant_send_messages(self.repair)
        # Every function that sends or receives internal messages reads the signing key;
        # the sweeper (it only deletes) does not.
        for function in (self.stepper, self.runner, self.api, self.repair):
            signing.grant(function)
        self.stepper.add_event_source(
            sources.SqsEventSource(
                transitions,
                batch_size=10,
                max_batching_window=Duration.seconds(0),
                report_batch_item_failures=True,
            )
        )
        self.sweeper = self.function(
            "Sweeper",
            "sweeper",
            SWEEPER_TIMEOUT_SECONDS,
            {topology.TABLE_ENV_VAR: storage.table.table_name, **POWERTOOLS_ENVIRONMENT},
            "stepflow-sweeper",
        )
        self.sweeper.add_event_source(
            sources.DynamoEventSource(
                storage.table,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=100,
                bisect_batch_on_error=True,
                retry_attempts=10,
                report_batch_item_failures=True,
                filters=[lambda_.FilterCriteria.filter(STREAM_FILTER)],
                on_failure=sources.SqsDlq(self.sweeper_failures),
            )
        )
        # TransactWriteItems of Delete + ConditionCheck items (see DynamoDBLog.purge)
        storage.table.grant(
            self.sweeper, "dynamodb:Query", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"
        )
        # The payload bucket: read and write its three prefixes (offloaded log documents,
        # large definitions, queue bodies over SQS's limit); nothing is deleted by hand
        # (messages/ expires by a lifecycle rule), so no s3:DeleteObject.
        prefixes = (topology.PAYLOAD_PREFIX, topology.DEFINITION_PREFIX, topology.MESSAGE_PREFIX)
        for function in (self.stepper, self.runner, self.api):
            storage.table.grant_read_write_data(function)
            for prefix in prefixes:
                storage.payloads.grant_read(function, f"{prefix}*")
                storage.payloads.grant_put(function, f"{prefix}*")
            transitions.grant_send_messages(function)
        # The repair only sends a small `repair` message (the stepper re-sends the outbox
        # itself): no payload bucket, no S3 grant.
        # Task messages go to the tasks queue from the stepper (a decision's outbox), the API
        # (StartExecution's first commit) and the runner: a nested StartExecution commits the
        # child's first decision in process (api/nested.py) and an EXPRESS map batch with
        # items still waiting re-sends itself (runtime/map_express.py).
        for function in (self.stepper, self.runner, self.api):
            tasks.grant_send_messages(function)
        stack = Stack.of(self)
        # Activities: one task queue per activity, created by CreateActivity (their DLQ is
        # the stack's ActivityTasksDlq, passed as ACTIVITY_DLQ_ARN).
        task_queues = f"arn:{stack.partition}:sqs:{stack.region}:{stack.account}:stepflow-tq*"
        for function in (self.stepper, self.api):
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=[
                        "sqs:CreateQueue",
                        "sqs:DeleteQueue",
                        "sqs:GetQueueUrl",
                        "sqs:GetQueueAttributes",
                        "sqs:SetQueueAttributes",
                        "sqs:TagQueue",
                        "sqs:ListQueueTags",
                        "sqs:SendMessage",
                        "sqs:ReceiveMessage",
                        "sqs:DeleteMessage",
                        "sqs:ChangeMessageVisibility",
                    ],
                    resources=[task_queues],
                )
            )
        # The runner only hands activity tasks to their queues: a nested StartExecution it
        # runs commits the child's first decision in process, whose Task may be an activity.
        self.runner.add_to_role_policy(
            iam.PolicyStatement(
                actions=["sqs:GetQueueUrl", "sqs:SendMessage"], resources=[task_queues]
            )
        )
        # ListActivities lists the task queues by prefix; SQS's ListQueues takes no resource.
        self.api.add_to_role_policy(
            iam.PolicyStatement(actions=["sqs:ListQueues"], resources=["*"])
        )
        # Task calls run with the execution's role (or the state's Credentials), assumed
        # through STS: the stepper and runner hold no integration permission of their own,
        # only AssumeRole on roles under the /stepflow/ path (in any account: a role of
        # another account works once its trust policy names these two roles).
        for function in (self.stepper, self.runner):
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["sts:AssumeRole"],
                    resources=[f"arn:{stack.partition}:iam::*:role{EXECUTION_ROLE_PATH}*"],
                )
            )
        # iam:PassRole checks: simulate the calling principal (a user, or the role of an
        # assumed-role session, whose ARN with its path GetRole gives). Callers are any
        # principal of the account, so the resources are the account's users and roles.
        iam_arn = f"arn:{stack.partition}:iam::{stack.account}"
        self.api.add_to_role_policy(
            iam.PolicyStatement(
                actions=["iam:SimulatePrincipalPolicy"],
                resources=[f"{iam_arn}:user/*", f"{iam_arn}:role/*"],
            )
        )
        self.api.add_to_role_policy(
            iam.PolicyStatement(actions=["iam:GetRole"], resources=[f"{iam_arn}:role/*"])
        )
        # Nested starts: simulate the task's role (the execution role, or a Credentials role
        # of this account; another account's cannot be simulated here and is denied).
        for function in (self.stepper, self.runner):
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["iam:SimulatePrincipalPolicy"], resources=[f"{iam_arn}:role/*"]
                )
            )

    def function(
        self, construct_id: str, folder: str, timeout: int, environment: dict[str, str], name: str
    ) -> lambda_.Function:
        """A function on the layer: ``functions/<folder>``'s ``handler.handler``.

        Named ``<stack name>-<folder>``, X-Ray active (the Powertools settings in
        ``environment`` keep execution data out of traces), its logs kept a month;
        ``name`` is its Powertools service.
        """
        log_group = logs.LogGroup(
            self, f"{construct_id}Logs", retention=logs.RetentionDays.ONE_MONTH
        )
        return lambda_.Function(
            self,
            construct_id,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler="handler.handler",
            code=lambda_.Code.from_asset(str(FUNCTIONS / folder), exclude=["__pycache__", "*.pyc"]),
            layers=[self.layer],
            timeout=Duration.seconds(timeout),
            memory_size=512,
            environment={**environment, "POWERTOOLS_SERVICE_NAME": name},
            function_name=function_name(Stack.of(self).stack_name, folder),
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
        )
