"""StepFlow's deployment settings, read once from the environment.

The CDK stack sets these variables on every function and ``stepflow local``
sets them on its in-process handlers; :func:`stepflow.aws.wiring.build` turns
one :class:`Settings` into the running parts. The names are the environment
variables the stack has always used (``TABLE_NAME``, ``QUEUE_URL``, ...), so a
deployed function needs no change.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stepflow.api.access import AccessPolicy
from stepflow.api.pass_role import checker_from_setting, start_checker_from_setting
from stepflow.aws.sqs_bus import RUNNER_FUNCTION_TIMEOUT
from stepflow.aws.topology import (
    DEFAULT_RETENTION_DAYS,
    TASK_QUEUE_PREFIX,
)
from stepflow.cells.queues import CellQueues
from stepflow.limits import DEFAULT_LIMITS, Limits

LIMIT_PREFIX = "STEPFLOW_"
"""Each limit of :class:`~stepflow.limits.Limits` is read from ``STEPFLOW_<NAME>``
(e.g. ``STEPFLOW_MAX_PAYLOAD_BYTES``)."""

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "000000000000"

REPAIR_DELAY_SECONDS = 60
"""How long after an API's failed send its repair message is delivered (see wiring); and
the delay to give ``STEPFLOW_REPAIR_DELAY_SECONDS`` for a repair message before each commit."""

OUTBOX_REPAIR_AGE_SECONDS = 120
"""An outbox older than this is re-sent by the outbox repair job."""


class Settings(BaseSettings):
    """Everything a StepFlow process needs to find its resources and size its work."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    table_name: str = Field(validation_alias=AliasChoices("TABLE_NAME", "table_name"))
    """The coordination log's DynamoDB table (also the registry's)."""

    queue_url: str = Field(default="", validation_alias=AliasChoices("QUEUE_URL", "queue_url"))
    """The transition queue (the stepper's event source); empty for the sweeper."""

    tasks_queue_url: str = Field(
        default="", validation_alias=AliasChoices("TASKS_QUEUE_URL", "tasks_queue_url")
    )
    """The inline-task queue the runner consumes; empty: tasks run on the transition queue."""

    payload_bucket: str = Field(
        default="", validation_alias=AliasChoices("PAYLOAD_BUCKET", "payload_bucket")
    )
    """S3 bucket for payloads too large for a log item; empty: no offload."""

    region: str = Field(
        default=DEFAULT_REGION,
        validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION", "region"),
    )
    account: str = Field(
        default=DEFAULT_ACCOUNT,
        validation_alias=AliasChoices("STEPFLOW_ACCOUNT_ID", "account"),
    )
    """The account in the ARNs StepFlow hands out."""

    retention_days: int = Field(
        default=DEFAULT_RETENTION_DAYS,
        ge=1,
        validation_alias=AliasChoices("STEPFLOW_RETENTION_DAYS", "retention_days"),
    )
    """How many days a finished execution stays readable (Step Functions keeps 90)."""

    task_queue_prefix: str = Field(
        default=TASK_QUEUE_PREFIX,
        validation_alias=AliasChoices("TASK_QUEUE_PREFIX", "task_queue_prefix"),
    )
    """Name prefix of the activity task queues."""

    activity_dlq_arn: str = Field(
        default="",
        validation_alias=AliasChoices("ACTIVITY_DLQ_ARN", "activity_dlq_arn"),
    )
    """The dead-letter queue every activity task queue shares (the stack declares it, with
    an alarm); empty: the first activity queue created makes one (``stepflow local``)."""

    task_lease_seconds: float = Field(
        default=RUNNER_FUNCTION_TIMEOUT,
        gt=0,
        validation_alias=AliasChoices("STEPFLOW_TASK_LEASE_SECONDS", "task_lease_seconds"),
    )
    """How long a claimed inline task is leased to the process running it."""

    claims_in_events: bool = Field(
        default=True,
        validation_alias=AliasChoices("STEPFLOW_CLAIMS_IN_EVENTS", "claims_in_events"),
    )
    """Whether a commit's first task group is claimed on its event item (issue 18, round 10;
    :mod:`stepflow.aws.log_claims`). Off for the first of two deploys that upgrade a stack
    running code from before it (docs/deploy.md)."""

    repair_delay_seconds: int = Field(
        default=0,
        ge=0,
        le=900,
        validation_alias=AliasChoices("STEPFLOW_REPAIR_DELAY_SECONDS", "repair_delay_seconds"),
    )
    """Delay of a repair message the API sends before each commit (0, the default since issue
    18's round 11: none; a failed send still leaves one, and a process that dies between its
    commit and its send is repaired by the outbox repair job or a retried StartExecution)."""

    poll_seconds: float = Field(
        default=0.0,
        ge=0,
        le=900,
        validation_alias=AliasChoices("STEPFLOW_POLL_SECONDS", "poll_seconds"),
    )
    """How often ``.sync`` jobs of polled services are polled (0: AWS's schedule, once a
    minute for ten minutes, then every five; e.g. 2 for ``stepflow local``)."""

    cells: str = Field(
        default="",
        validation_alias=AliasChoices("STEPFLOW_CELLS", "cells"),
    )
    """Cells modules the steppers load, comma-separated (dotted modules or ``.py`` paths):
    their ``stepflow:cell:*`` tasks run inline (see docs/cells.md)."""

    cell_queues: str = Field(
        default="",
        validation_alias=AliasChoices("STEPFLOW_CELL_QUEUES", "cell_queues"),
    )
    """Cells that run on a task queue, not inline: ``name[:major]=queue,...``, ``*=queue``,
    ``saga:compensate=queue``; served by ``stepflow worker --cells`` (docs/cells-workers.md)."""

    hooks: str = Field(
        default="",
        validation_alias=AliasChoices("STEPFLOW_HOOKS", "hooks"),
    )
    """The hooks the stream dispatcher runs, comma-separated names (e.g.
    ``metrics,eventbridge,webhooks``; empty: none): see docs/hooks.md."""

    activity_lease_seconds: int = Field(
        default=60,
        ge=1,
        le=43_200,
        validation_alias=AliasChoices("STEPFLOW_ACTIVITY_LEASE_SECONDS", "activity_lease_seconds"),
    )
    """An activity (or cell queue) task's lease when its Task sets no ``HeartbeatSeconds``:
    a dead worker's task goes to the next worker this long after its last heartbeat."""

    outbox_repair_age_seconds: int = Field(
        default=OUTBOX_REPAIR_AGE_SECONDS,
        ge=0,
        validation_alias=AliasChoices(
            "STEPFLOW_OUTBOX_REPAIR_AGE_SECONDS", "outbox_repair_age_seconds"
        ),
    )
    """The outbox repair job re-sends outboxes pending for longer than this."""

    assume_roles: bool = Field(
        default=False,
        validation_alias=AliasChoices("STEPFLOW_ASSUME_ROLES", "assume_roles"),
    )
    """Whether task calls assume the execution's (or the state's) role through STS.

    Off (the default, ``stepflow local`` and the in-memory driver): the ARN's shape is
    checked and the process's own credentials are used. The CDK stack turns it on."""

    own_functions: str = Field(
        default="", validation_alias=AliasChoices("STEPFLOW_OWN_FUNCTIONS", "own_functions")
    )
    """StepFlow's Lambda functions (names or ARNs, comma-separated), refused as task targets."""

    own_queues: str = Field(
        default="", validation_alias=AliasChoices("STEPFLOW_OWN_QUEUES", "own_queues")
    )
    """StepFlow's queues beyond ``QUEUE_URL``/``TASKS_QUEUE_URL`` (their DLQs, the sweeper's
    failure queue; names, URLs or ARNs, comma-separated), refused as task targets."""

    access_policy: str = Field(
        default="", validation_alias=AliasChoices("STEPFLOW_ACCESS_POLICY", "access_policy")
    )
    """Who may act on which state machines, as JSON rules (see :mod:`stepflow.api.access`);
    empty: no policy, IAM decides alone."""

    pass_role_check: str = Field(
        default="off",
        validation_alias=AliasChoices("STEPFLOW_PASS_ROLE_CHECK", "pass_role_check"),
    )
    """iam:PassRole at CreateStateMachine, UpdateStateMachine and TestState: ``iam`` (IAM's
    SimulatePrincipalPolicy; the CDK stack sets it), ``off`` (``stepflow local``'s default),
    or a JSON table ``{principal pattern: [role patterns]}`` (see
    :mod:`stepflow.api.pass_role`)."""

    signing_secret_arn: str = Field(
        default="",
        validation_alias=AliasChoices("STEPFLOW_SIGNING_SECRET_ARN", "signing_secret_arn"),
    )
    """The Secrets Manager secret whose value signs internal messages (the deployed stack)."""

    signing_key: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices("STEPFLOW_SIGNING_KEY", "signing_key"),
    )
    """A raw signing key instead of the secret (``stepflow local``, tests); at least 32 bytes."""

    signing_key_previous: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices("STEPFLOW_SIGNING_KEY_PREVIOUS", "signing_key_previous"),
    )
    """The raw key before the last rotation, still accepted (optional)."""

    limits: Limits = DEFAULT_LIMITS
    """Input, data, history and evaluation bounds (``STEPFLOW_MAX_PAYLOAD_BYTES``, ...)."""

    @model_validator(mode="before")
    @classmethod
    def _collect_limits(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or "limits" in data:
            return data
        found = {}
        for name in Limits.field_names():
            value = data.get(LIMIT_PREFIX + name.upper())
            if isinstance(value, str) and value.strip():
                found[name] = value
        if not found:
            return data
        return {**data, "limits": found}

    nested_start_check: str = Field(
        default="off",
        validation_alias=AliasChoices("STEPFLOW_NESTED_START_CHECK", "nested_start_check"),
    )
    """A Task's nested StartExecution: ``iam`` asks IAM (SimulatePrincipalPolicy) whether the
    task's role may ``states:StartExecution`` on the target (the CDK stack sets it on the
    stepper and runner); ``off`` (default: ``stepflow local``, tests) does not check."""

    @field_validator("access_policy", "pass_role_check", "nested_start_check")
    @classmethod
    def _access_settings(cls, value: str, info: Any) -> str:
        # A bad policy fails the deployment's first request loudly, never opens access.
        if info.field_name == "access_policy":
            AccessPolicy.from_json(value)
        elif info.field_name == "nested_start_check":
            start_checker_from_setting(value, lambda: None)
        else:
            checker_from_setting(value, lambda: None)
        return value

    @field_validator("cell_queues")
    @classmethod
    def _cell_queues(cls, value: str) -> str:
        CellQueues.parse(value)  # a bad route fails the first request, never runs inline
        return value

    @field_validator("retention_days", mode="before")
    @classmethod
    def _blank_is_default(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return DEFAULT_RETENTION_DAYS
        return value

    @model_validator(mode="after")
    def _redrive_before_purge(self) -> Settings:
        # A redrive must find the execution: the window ends before its record expires.
        if self.limits.redrive_window_seconds >= self.retention_seconds:
            raise ValueError(
                f"STEPFLOW_REDRIVE_WINDOW_SECONDS ({self.limits.redrive_window_seconds}) must "
                f"be below the retention of finished executions (STEPFLOW_RETENTION_DAYS="
                f"{self.retention_days}, {self.retention_seconds} s)"
            )
        return self

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of ``environ`` (the process environment if None).

        Raises ``pydantic.ValidationError`` naming every missing or bad variable.
        """
        return cls.model_validate(dict(os.environ if environ is None else environ))

    @property
    def retention_seconds(self) -> int:
        """The retention of finished executions, in seconds."""
        return self.retention_days * 86_400
