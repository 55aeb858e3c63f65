"""The local stack's fixed names and the settings its functions run with.

Kept out of :mod:`stepflow.local.stack` (which re-exports every name here) so that
module stays readable in one sitting.
"""

from __future__ import annotations

import os
import secrets
from typing import TYPE_CHECKING

from pydantic import SecretStr

from stepflow.aws.settings import Settings
from stepflow.limits import Limits

if TYPE_CHECKING:
    from stepflow.local.stack import LocalStack

__all__ = [
    "BUCKET",
    "CREDENTIALS",
    "FUNCTIONS",
    "QUEUE",
    "REGION",
    "TABLE",
    "TASKS_QUEUE",
    "local_settings",
]

TABLE = "stepflow-local"
QUEUE = "stepflow-transitions"
TASKS_QUEUE = "stepflow-tasks"
BUCKET = "stepflow-local-payloads"
REGION = "us-east-1"
FUNCTIONS = (
    "stepflow-api",
    "stepflow-stepper",
    "stepflow-runner",
    "stepflow-sweeper",
    "stepflow-outbox-repair",
)
"""The names the local stack's functions go by (the stack's own; refused as task targets)."""
CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


def local_settings(
    stack: LocalStack, *, queue_url: str, dlq_url: str, tasks_url: str, tasks_dlq_url: str
) -> Settings:
    """The settings the stack's functions run with.

    The stack's own resources, then its fields; the fields left unset (``limits``,
    ``poll_seconds``, ``hook_names``, ``activity_lease_seconds``) come from the process
    environment (``STEPFLOW_<NAME>``), else their defaults.
    """
    return Settings(
        table_name=TABLE,
        queue_url=queue_url,
        tasks_queue_url=tasks_url,
        payload_bucket=BUCKET,
        region=REGION,
        outbox_repair_age_seconds=stack.repair_age,
        assume_roles=stack.assume_roles,
        own_functions=",".join(FUNCTIONS),
        own_queues=f"{dlq_url},{tasks_dlq_url}",
        limits=stack.limits or _environment_limits(),
        poll_seconds=stack.poll_seconds
        if stack.poll_seconds is not None
        else _environment_settings().poll_seconds,
        access_policy=stack.access_policy,
        pass_role_check=stack.check_roles,
        cells=stack.cells,
        # A fresh random key per run signs this stack's internal messages.
        signing_key=SecretStr(secrets.token_urlsafe(48)),
        cell_queues=stack.cell_queues,
        hooks=stack.hook_names or _environment_settings().hooks,
        activity_lease_seconds=stack.activity_lease_seconds
        or _environment_settings().activity_lease_seconds,
    )


def _environment_limits() -> Limits:
    """The limits the process environment sets (``STEPFLOW_MAX_PAYLOAD_BYTES``, ...)."""
    return _environment_settings().limits


def _environment_settings() -> Settings:
    """The settings the process environment sets (``STEPFLOW_<NAME>``)."""
    return Settings.model_validate({**os.environ, "TABLE_NAME": TABLE})
