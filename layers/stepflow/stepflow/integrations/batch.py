"""``arn:aws:states:::batch:submitJob``: submit an AWS Batch job (request-response; ``.sync`` next).

Parameters in Step Functions' PascalCase (``JobName``, ``JobQueue``,
``JobDefinition``, ``ContainerOverrides``...), the output too (``JobArn``,
``JobId``, ``JobName``); errors are ``Batch.<Code>`` (``Batch.ClientException``).
"""

from __future__ import annotations

from stepflow.integrations.boto_calls import Action, BotoIntegration

BATCH = BotoIntegration(
    service="batch",
    client="batch",
    prefix="Batch",
    cause_service="AWSBatch",
    actions={"submitJob": Action("SubmitJob", frozenset({"request-response", "sync"}))},
)

INTEGRATIONS: tuple[BotoIntegration, ...] = (BATCH,)
