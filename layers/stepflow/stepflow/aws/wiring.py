"""One wiring: the running parts of StepFlow assembled from one :class:`Settings`.

Every process builds what it needs here and nowhere else: the API Lambda
(:attr:`Wiring.service`), the stepper Lambda (:attr:`Wiring.stepper`), the
task runner (:attr:`Wiring.runner`), the sweeper and the outbox repair job
(:attr:`Wiring.log`), ``stepflow local`` and the durable tests (all of them,
over moto's clients). Parts are built on first use, so a process pays only
for the clients it touches.

Two steppers share the ports and differ in one decision each:

- :attr:`Wiring.stepper` consumes the transition queue; task messages go to
  the tasks queue (when ``TASKS_QUEUE_URL`` is set) or are run inline;
- :attr:`Wiring.api_stepper` serves the API: it commits and enqueues and never
  runs a task; before each commit it sends a delayed repair message so that a
  commit whose outbox the API never sent is repaired even if the API dies.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cached_property
from typing import Any

import boto3

from stepflow.activities import ActivityRouter, CallbackInvoker
from stepflow.api.arns import Scope
from stepflow.api.service import StepFunctionsService
from stepflow.aws.dynamodb_log import DynamoDBLog
from stepflow.aws.dynamodb_registry import DynamoDBRegistry
from stepflow.aws.lambda_invoker import LambdaInvoker
from stepflow.aws.s3_payloads import S3PayloadStore
from stepflow.aws.settings import Settings
from stepflow.aws.sqs_bus import SQSBus
from stepflow.aws.sqs_task_queue import SQSTaskQueue
from stepflow.runtime import MessageBus, Stepper, TaskInvoker
from stepflow.runtime.registry import DefinitionCache, StateMachineRegistry


class Wiring:
    """The parts of one StepFlow process, built lazily from ``settings``.

    ``clients`` overrides boto3 clients by service name (``dynamodb``,
    ``sqs``, ``s3``, ``lambda``); ``invoker`` replaces the Lambda invoker
    (Python handlers in ``stepflow local``); ``inline_tasks`` lets the
    transition stepper run Lambda tasks itself when no tasks queue is set.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clients: dict[str, Any] | None = None,
        invoker: TaskInvoker | None = None,
        clock: Callable[[], float] = time.time,
        inline_tasks: bool = True,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.inline_tasks = inline_tasks
        self._clients = dict(clients or {})
        self._invoker = invoker

    def client(self, service: str) -> Any:
        """The boto3 client of ``service`` (given, or created once in the settings' region)."""
        if service not in self._clients:
            self._clients[service] = boto3.client(service, region_name=self.settings.region)
        return self._clients[service]

    @cached_property
    def log(self) -> DynamoDBLog:
        """The coordination log on the table, offloading to the payload bucket if set."""
        bucket = self.settings.payload_bucket
        return DynamoDBLog(
            self.settings.table_name,
            client=self.client("dynamodb"),
            payloads=S3PayloadStore(bucket, client=self.client("s3")) if bucket else None,
            retention_seconds=self.settings.retention_seconds,
            clock=self.clock,
        )

    @cached_property
    def bus(self) -> SQSBus:
        """The transition queue."""
        if not self.settings.queue_url:
            raise ValueError("QUEUE_URL is not set")
        return SQSBus(self.settings.queue_url, client=self.client("sqs"))

    @cached_property
    def tasks_bus(self) -> MessageBus | None:
        """The tasks queue the runner consumes (None: tasks run on the transition queue)."""
        url = self.settings.tasks_queue_url
        return SQSBus(url, client=self.client("sqs")) if url else None

    @cached_property
    def registry(self) -> StateMachineRegistry:
        """State machines, versions, aliases and the definitions executions run."""
        return DynamoDBRegistry(self.settings.table_name, client=self.client("dynamodb"))

    @cached_property
    def definitions(self) -> DefinitionCache:
        """The one definition cache, keyed by the exact revision or version ARN."""
        return DefinitionCache(self.registry)

    @cached_property
    def task_queue(self) -> SQSTaskQueue:
        """The activity task queues."""
        return SQSTaskQueue(
            client=self.client("sqs"),
            prefix=self.settings.task_queue_prefix,
            dead_letter_arn=self.settings.activity_dlq_arn or None,
        )

    @cached_property
    def invoker(self) -> TaskInvoker:
        """Lambda tasks (or the given invoker) plus the ``.waitForTaskToken`` integrations."""
        inner = self._invoker
        if inner is None:
            given = self._clients.get("lambda")
            inner = LambdaInvoker(given, region=self.settings.region)
        return CallbackInvoker(inner, sqs=self.client("sqs"))

    @cached_property
    def router(self) -> ActivityRouter:
        """Activity tasks to their queues."""
        return ActivityRouter(self.task_queue, self.bus)

    @cached_property
    def stepper(self) -> Stepper:
        """The stepper of the transition queue (the stepper Lambda, the local pollers)."""
        return self._stepper(inline_tasks=self.inline_tasks and self.tasks_bus is None)

    @cached_property
    def runner(self) -> Stepper:
        """The stepper of the tasks queue: claims, runs and reports one task at a time."""
        return self._stepper(inline_tasks=False)

    @cached_property
    def api_stepper(self) -> Stepper:
        """The API's stepper: commits and enqueues, never runs a task."""
        return self._stepper(inline_tasks=False, repair_delay=self.settings.repair_delay_seconds)

    @cached_property
    def service(self) -> StepFunctionsService:
        """The Step Functions API service."""
        return StepFunctionsService(
            log=self.log,
            bus=self.bus,
            registry=self.registry,
            invoker=self.invoker,
            scope=Scope(self.settings.region, self.settings.account),
            clock=self.clock,
            task_queue=self.task_queue,
            stepper=self.api_stepper,
        )

    def _stepper(self, *, inline_tasks: bool, repair_delay: int = 0) -> Stepper:
        return Stepper(
            log=self.log,
            bus=self.bus,
            definitions=self.definitions,
            clock=self.clock,
            invoker=self.invoker,
            task_lease_seconds=self.settings.task_lease_seconds,
            inline_tasks=inline_tasks,
            router=self.router,
            tasks_bus=self.tasks_bus,
            repair_delay=repair_delay,
            limits=self.settings.limits,
        )


def build(
    settings: Settings | None = None,
    *,
    clients: dict[str, Any] | None = None,
    invoker: TaskInvoker | None = None,
    clock: Callable[[], float] = time.time,
    inline_tasks: bool = True,
) -> Wiring:
    """The wiring of ``settings`` (default: read from the environment)."""
    return Wiring(
        settings if settings is not None else Settings.from_environ(),
        clients=clients,
        invoker=invoker,
        clock=clock,
        inline_tasks=inline_tasks,
    )
