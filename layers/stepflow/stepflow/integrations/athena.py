"""``arn:aws:states:::athena:*``: Athena queries (request-response; ``.sync`` is the next issue's).

Errors are ``Athena.<Code>`` (``Athena.InvalidRequestException``).
"""

from __future__ import annotations

from stepflow.engine.resources import Pattern
from stepflow.integrations.boto_calls import Action, BotoIntegration

_SYNC: frozenset[Pattern] = frozenset({"request-response", "sync"})

ATHENA = BotoIntegration(
    service="athena",
    client="athena",
    prefix="Athena",
    cause_service="AmazonAthena",
    actions={
        "startQueryExecution": Action("StartQueryExecution", _SYNC),
        "getQueryExecution": Action("GetQueryExecution"),
        "getQueryResults": Action("GetQueryResults"),
        "stopQueryExecution": Action("StopQueryExecution"),
    },
)

INTEGRATIONS: tuple[BotoIntegration, ...] = (ATHENA,)
