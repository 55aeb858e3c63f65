"""``arn:aws:states:::glue:startJobRun``: start a Glue job (request-response; ``.sync`` next issue).

The output is ``{"JobRunId": ...}``; errors are ``Glue.<Code>``
(``Glue.EntityNotFoundException``).
"""

from __future__ import annotations

from stepflow.integrations.boto_calls import Action, BotoIntegration

GLUE = BotoIntegration(
    service="glue",
    client="glue",
    prefix="Glue",
    cause_service="AWSGlue",
    actions={"startJobRun": Action("StartJobRun", frozenset({"request-response", "sync"}))},
)

INTEGRATIONS: tuple[BotoIntegration, ...] = (GLUE,)
