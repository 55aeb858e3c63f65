"""The activity and callback service: every Step Functions operation on activities and tasks."""

from __future__ import annotations

import time
from collections.abc import Callable

from stepflow.activities.catalog import ActivityCatalog
from stepflow.activities.tasks import TaskService
from stepflow.runtime.payloads import PayloadStore
from stepflow.runtime.signing import MessageSigner
from stepflow.runtime.stepper import Stepper
from stepflow.runtime.task_queue import TaskQueue

DEFAULT_LEASE_SECONDS = 60
"""A task's lease when its Task sets no ``HeartbeatSeconds`` (heartbeats extend it)."""

DEFAULT_MAX_DELIVERIES = 5
"""Times one attempt's lease may run out (its worker died or stalled) before it fails."""


class ActivityService(ActivityCatalog, TaskService):
    """CreateActivity ... SendTaskHeartbeat as methods taking the API request's parameters.

    Each method takes the request as a dict with the Step Functions field names
    and returns the response dict; bad input raises
    :class:`~stepflow.activities.ActivityError` (the AWS ``__type`` in ``code``).
    ``stepper`` must route activity tasks to ``queue`` (``router=ActivityRouter(queue, bus,
    signer=signer)``); ``signer`` verifies each task message before it is handed out.
    """

    def __init__(
        self,
        *,
        stepper: Stepper,
        queue: TaskQueue,
        signer: MessageSigner,
        region: str = "us-east-1",
        account: str = "123456789012",
        clock: Callable[[], float] = time.time,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        payloads: PayloadStore | None = None,
    ) -> None:
        if lease_seconds < 1 or max_deliveries < 1:
            raise ValueError("lease_seconds and max_deliveries must be at least 1")
        self.stepper, self.queue, self.signer = stepper, queue, signer
        self.payloads = payloads
        """Where task messages over SQS's limit are stored (:mod:`stepflow.runtime.offload`)."""
        self.region, self.account, self.clock = region, account, clock
        self.lease_seconds, self.max_deliveries = lease_seconds, max_deliveries
