"""``arn:aws:states:::athena:*``: Athena queries; ``startQueryExecution.sync`` waits for the query.

Errors are ``Athena.<Code>`` (``Athena.InvalidRequestException``). The ``.sync`` form
polls GetQueryExecution (:mod:`.polled`): its output is that response; a FAILED or
CANCELLED query fails the state with ``States.TaskFailed``; stopping the state stops
the query (StopQueryExecution).
"""

from __future__ import annotations

from stepflow.engine.resources import Pattern
from stepflow.integrations.boto_calls import Action, BotoIntegration
from stepflow.integrations.polled import ATHENA_QUERY, PolledIntegration

_SYNC: frozenset[Pattern] = frozenset({"request-response", "sync"})

ATHENA_CALLS = BotoIntegration(
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

ATHENA = PolledIntegration(ATHENA_CALLS, {"startQueryExecution": ATHENA_QUERY})

INTEGRATIONS: tuple[PolledIntegration, ...] = (ATHENA,)
