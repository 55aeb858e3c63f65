"""``arn:aws:states:::batch:submitJob``: submit an AWS Batch job (request-response; ``.sync`` next).

Parameters in Step Functions' PascalCase (``JobName``, ``JobQueue``,
``JobDefinition``, ``ContainerOverrides``...), the output too (``JobArn``,
``JobId``, ``JobName``); errors are ``Batch.<Code>`` (``Batch.ClientException``).
"""

from __future__ import annotations

from stepflow.integrations.boto_calls import BotoIntegration

BATCH = BotoIntegration.single("batch", "Batch", "AWSBatch", "submitJob", "SubmitJob")

INTEGRATIONS: tuple[BotoIntegration, ...] = (BATCH,)
