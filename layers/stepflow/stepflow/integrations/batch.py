"""``arn:aws:states:::batch:submitJob``: submit an AWS Batch job; ``.sync`` waits for it.

Parameters in Step Functions' PascalCase (``JobName``, ``JobQueue``,
``JobDefinition``, ``ContainerOverrides``...), the output too (``JobArn``,
``JobId``, ``JobName``); errors are ``Batch.<Code>`` (``Batch.ClientException``).
The ``.sync`` form polls DescribeJobs (:mod:`.polled`): its output is the job; a
FAILED job fails the state with ``States.TaskFailed``; stopping the state
terminates the job (TerminateJob).
"""

from __future__ import annotations

from stepflow.integrations.boto_calls import BotoIntegration
from stepflow.integrations.polled import BATCH_JOB, PolledIntegration

BATCH_CALLS = BotoIntegration.single("batch", "Batch", "AWSBatch", "submitJob", "SubmitJob")

BATCH = PolledIntegration(BATCH_CALLS, {"submitJob": BATCH_JOB})

INTEGRATIONS: tuple[PolledIntegration, ...] = (BATCH,)
