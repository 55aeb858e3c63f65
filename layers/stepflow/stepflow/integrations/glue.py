"""``arn:aws:states:::glue:startJobRun``: start a Glue job; ``.sync`` waits for the job run.

The output is ``{"JobRunId": ...}``; errors are ``Glue.<Code>``
(``Glue.EntityNotFoundException``). The ``.sync`` form polls GetJobRun
(:mod:`.polled`): its output is the ``JobRun``; a run that ends FAILED, ERROR,
TIMEOUT, STOPPED or EXPIRED fails the state with ``States.TaskFailed``; stopping the
state stops the run (BatchStopJobRun).
"""

from __future__ import annotations

from stepflow.integrations.boto_calls import BotoIntegration
from stepflow.integrations.polled import GLUE_JOB, PolledIntegration

GLUE_CALLS = BotoIntegration.single("glue", "Glue", "AWSGlue", "startJobRun", "StartJobRun")

GLUE = PolledIntegration(GLUE_CALLS, {"startJobRun": GLUE_JOB})

INTEGRATIONS: tuple[PolledIntegration, ...] = (GLUE,)
