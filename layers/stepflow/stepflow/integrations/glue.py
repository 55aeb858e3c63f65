"""``arn:aws:states:::glue:startJobRun``: start a Glue job (request-response; ``.sync`` next issue).

The output is ``{"JobRunId": ...}``; errors are ``Glue.<Code>``
(``Glue.EntityNotFoundException``).
"""

from __future__ import annotations

from stepflow.integrations.boto_calls import BotoIntegration

GLUE = BotoIntegration.single("glue", "Glue", "AWSGlue", "startJobRun", "StartJobRun")

INTEGRATIONS: tuple[BotoIntegration, ...] = (GLUE,)
