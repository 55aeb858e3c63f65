"""StepFlow's own resources of one deployment, from its :class:`Settings`."""

from __future__ import annotations

from stepflow.aws.settings import Settings
from stepflow.aws.sqs_task_queue import DLQ_PREFIX
from stepflow.runtime.targets import OwnResources


def own_resources(settings: Settings) -> OwnResources:
    """What tasks may never name: table, queues (and activity queues), bucket, functions, secret.

    The table, transition and tasks queues, payload bucket and activity-queue prefix
    come from their own settings; the functions and the other queues (DLQs) from
    ``STEPFLOW_OWN_FUNCTIONS`` and ``STEPFLOW_OWN_QUEUES``, which the CDK stack and
    the local stack set; the secret holding the message-signing key from
    ``STEPFLOW_SIGNING_SECRET_ARN``.
    """
    prefix = settings.task_queue_prefix
    dlq_prefix = prefix.replace("-tq-", "-tqdlq-") if "-tq-" in prefix else DLQ_PREFIX
    return OwnResources.of(
        functions=_split(settings.own_functions),
        queues=[
            settings.queue_url,
            settings.tasks_queue_url,
            settings.activity_dlq_arn,
            *_split(settings.own_queues),
        ],
        queue_prefixes=[prefix, dlq_prefix],
        tables=[settings.table_name],
        buckets=[settings.payload_bucket],
        secrets=[settings.signing_secret_arn],
    )


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]
