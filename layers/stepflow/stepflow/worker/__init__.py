"""The worker SDK: a process that leases activity tasks and runs a handler on each.

``Worker(client, activity_arn, handler, concurrency=8).run()`` with a boto3
``stepfunctions`` client (StepFlow's API or AWS) or a :class:`ServiceClient`
over an in-process service; ``stepflow worker --activity NAME module:handler``
from the command line; ``stepflow worker --cells module --queue q`` serves the
cells routed to a cell queue (:mod:`stepflow.worker.cells`). See
:mod:`stepflow.worker.runner` for the behaviour.
"""

from stepflow.worker.cells import CellHandler, FencedJournal, LeaseLostError, cell_activity
from stepflow.worker.client import ActivityClient, ReleasingClient, ServiceClient
from stepflow.worker.context import TaskContext, TaskFailure, idempotency_key
from stepflow.worker.health import HealthServer
from stepflow.worker.runner import Handler, Worker

__all__ = [
    "ActivityClient",
    "CellHandler",
    "FencedJournal",
    "Handler",
    "HealthServer",
    "LeaseLostError",
    "ReleasingClient",
    "ServiceClient",
    "TaskContext",
    "TaskFailure",
    "Worker",
    "cell_activity",
    "idempotency_key",
]
