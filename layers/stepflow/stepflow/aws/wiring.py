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
  runs a task; a delayed repair message follows a failed send, and precedes a commit
  that ends an execution (or every commit, with ``STEPFLOW_REPAIR_DELAY_SECONDS``),
  so that an outbox the API never sent is repaired (the outbox repair job re-sends
  those of running executions).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cached_property
from typing import Any

import boto3

from stepflow.api.access import AccessControl, AccessPolicy
from stepflow.api.arns import Scope
from stepflow.api.nested import ApiExecutionStarter
from stepflow.api.pass_role import (
    MapRunStarts,
    StartChecker,
    checker_from_setting,
    start_checker_from_setting,
)
from stepflow.api.service import StepFunctionsService
from stepflow.aws.dynamodb_log import DynamoDBLog
from stepflow.aws.dynamodb_registry import DynamoDBRegistry
from stepflow.aws.hooks_registry import (
    HOOK_FACTORIES,
    HookFactory,
    UnknownHookError,
    hooks_from_settings,
)
from stepflow.aws.own_resources import own_resources
from stepflow.aws.role_clients import RoleClients
from stepflow.aws.s3_payloads import S3PayloadStore
from stepflow.aws.settings import REPAIR_DELAY_SECONDS, Settings
from stepflow.aws.signing_keys import secrets_manager_signer
from stepflow.aws.sqs_bus import RUNNER_BATCH_SIZE, SQSBus
from stepflow.aws.sqs_task_queue import SQSTaskQueue
from stepflow.aws.topology import DEFINITION_PREFIX, MESSAGE_PREFIX
from stepflow.aws.wiring_cells import CellParts
from stepflow.cells import (
    CellTasks,
)
from stepflow.data.budget import Budget, deployed_budgets
from stepflow.engine import ParameterCheck
from stepflow.integrations import IntegrationInvoker, Registry, default_registry
from stepflow.integrations.catalog import with_http, with_poll_schedule, with_starter
from stepflow.integrations.http_denied import DeniedEndpoints
from stepflow.integrations.http_port import Urllib3Http
from stepflow.integrations.item_reader import S3ItemSource
from stepflow.integrations.lambda_ import LAMBDA_CONFIG
from stepflow.integrations.polled import PollSchedule
from stepflow.integrations.result_writer import S3ResultSink
from stepflow.runtime import MessageBus, Stepper, TaskInvoker
from stepflow.runtime.payloads import PayloadStore
from stepflow.runtime.registry import DefinitionCache, StateMachineRegistry
from stepflow.runtime.signing import MessageSigner
from stepflow.runtime.targets import OwnTargetGuard

__all__ = [
    "HOOK_FACTORIES",
    "HookFactory",
    "MissingSigningKeyError",
    "UnknownHookError",
    "Wiring",
    "build",
    "hooks_from_settings",
]


class MissingSigningKeyError(RuntimeError):
    """The settings name no message-signing key."""


class Wiring(CellParts):
    """The parts of one StepFlow process, built lazily from ``settings``.

    ``clients`` overrides boto3 clients by service name (``dynamodb``,
    ``sqs``, ``s3``, ``lambda``); ``invoker`` replaces the integrations
    (tests); ``front`` wraps them (``stepflow local``'s Python handlers run
    first, the integrations take the rest); ``inline_tasks`` lets the
    transition stepper run Lambda tasks itself when no tasks queue is set;
    ``endpoint_url`` points the task clients (and STS) at moto or LocalStack,
    with ``endpoint_credentials`` (an access key pair) when given, and
    ``service_endpoints`` per service (see :class:`RoleClients`);
    ``denied_endpoints`` are the stack's own endpoints no HTTP task may reach
    (``stepflow local``: moto's, DynamoDB's and its API's).
    ``check_parameters`` replaces the registry's check of a Task's parameters
    before it is scheduled (``stepflow local`` skips the resources its handlers take).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clients: dict[str, Any] | None = None,
        invoker: TaskInvoker | None = None,
        clock: Callable[[], float] = time.time,
        inline_tasks: bool = True,
        endpoint_url: str | None = None,
        front: Callable[[TaskInvoker], TaskInvoker] | None = None,
        endpoint_credentials: dict[str, str] | None = None,
        service_endpoints: dict[str, str] | None = None,
        check_parameters: ParameterCheck | None = None,
        denied_endpoints: DeniedEndpoints | None = None,
    ) -> None:
        self.settings = settings
        self._check_parameters = check_parameters
        self.denied_endpoints = denied_endpoints
        self.service_endpoints = service_endpoints
        self.endpoint_url = endpoint_url
        self.endpoint_credentials = endpoint_credentials
        self.clock = clock
        self.inline_tasks = inline_tasks
        self._clients = dict(clients or {})
        self._invoker = invoker
        self._front = front

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
            claims_in_events=self.settings.claims_in_events,
        )

    @cached_property
    def signer(self) -> MessageSigner:
        """Signs and verifies every internal message: the raw key if set, else the secret.

        Neither set is a startup error (``MissingSigningKeyError``): a function
        never runs accepting unsigned messages.
        """
        key = self.settings.signing_key.get_secret_value()
        if key:
            previous = self.settings.signing_key_previous.get_secret_value()
            return MessageSigner.from_text(key, previous)
        if self.settings.signing_secret_arn:
            arn = self.settings.signing_secret_arn
            return secrets_manager_signer(arn, client=self.client("secretsmanager"))
        raise MissingSigningKeyError(
            "no message-signing key: set STEPFLOW_SIGNING_SECRET_ARN (or STEPFLOW_SIGNING_KEY)"
        )

    @cached_property
    def bus(self) -> SQSBus:
        """The transition queue."""
        if not self.settings.queue_url:
            raise ValueError("QUEUE_URL is not set")
        return SQSBus(
            self.settings.queue_url,
            signer=self.signer,
            client=self.client("sqs"),
            payloads=self.message_store,
        )

    @cached_property
    def tasks_bus(self) -> MessageBus | None:
        """The tasks queue the runner consumes (None: tasks run on the transition queue)."""
        url = self.settings.tasks_queue_url
        if not url:
            return None
        return SQSBus(
            url, signer=self.signer, client=self.client("sqs"), payloads=self.message_store
        )

    @cached_property
    def message_store(self) -> PayloadStore | None:
        """Where queue bodies over SQS's limit go: the payload bucket's ``messages/``."""
        bucket = self.settings.payload_bucket
        if not bucket:
            return None
        return S3PayloadStore(bucket, client=self.client("s3"), prefix=MESSAGE_PREFIX)

    @cached_property
    def registry(self) -> StateMachineRegistry:
        """State machines, versions, aliases and the definitions executions run.

        Definitions too large for an item go to the payload bucket's ``definitions/``.
        """
        bucket = self.settings.payload_bucket
        return DynamoDBRegistry(
            self.settings.table_name,
            client=self.client("dynamodb"),
            definitions=(
                S3PayloadStore(bucket, client=self.client("s3"), prefix=DEFINITION_PREFIX)
                if bucket
                else None
            ),
        )

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
    def task_clients(self) -> RoleClients:
        """The one factory of the clients task integrations call with (the task's role)."""
        given: dict[str, Any] = {
            s: self._clients[s] for s in ("lambda", "sqs") if s in self._clients
        }
        return RoleClients(
            assume_roles=self.settings.assume_roles,
            region=self.settings.region,
            sts=self._clients.get("sts"),
            clients=given,
            configs={"lambda": LAMBDA_CONFIG},
            endpoint_url=self.endpoint_url,
            credentials=self.endpoint_credentials,
            service_endpoints=self.service_endpoints,
        )

    @cached_property
    def integrations(self) -> Registry:
        """The integration registry tasks run on.

        HTTP tasks never reach link-local addresses, nor (deployed) this machine,
        nor (``stepflow local``) its own endpoints.
        """
        # Deployed (no deny list): HTTP tasks never reach this machine (the Lambda
        # runtime API listens on 127.0.0.1); stepflow local's users call local servers.
        local = self.denied_endpoints is not None
        http = Urllib3Http(denied=self.denied_endpoints, allow_loopback=local)
        # A Task's nested StartExecution goes through this process's API service (in process).
        # The deployed stack asks IAM whether the task's role may start the target.
        starter = ApiExecutionStarter(
            lambda: self.service.executions, lambda: self.service.limits, self.start_checker
        )
        registry = with_starter(with_http(default_registry(), http), starter)
        if self.settings.poll_seconds > 0:
            registry = with_poll_schedule(registry, PollSchedule.fixed(self.settings.poll_seconds))
        return registry

    @cached_property
    def start_checker(self) -> StartChecker | None:
        """Whether a role may StartExecution (``STEPFLOW_NESTED_START_CHECK``; None: off).

        Asked for a Task's nested start (the task's role) and for a distributed Map's
        children (the execution's role).
        """
        return start_checker_from_setting(
            self.settings.nested_start_check, lambda: self.client("iam")
        )

    @cached_property
    def check_parameters(self) -> ParameterCheck | None:
        """Every decision's check of a Task's parameters before it is scheduled.

        The one given, else the registry's (None when ``invoker`` replaces the
        integrations: it alone knows what it runs).
        """
        if self._check_parameters is not None:
            return self._check_parameters
        return self.integrations.parameters_problem if self._invoker is None else None

    @cached_property
    def invoker(self) -> TaskInvoker:
        """Every task integration of the registry, each call with the task's role.

        ``invoker`` (given) replaces them; ``front`` (given) wraps them.
        Outermost, the guard refuses any task aimed at StepFlow's own resources.
        """
        inner = self._invoker
        if inner is None:
            inner = IntegrationInvoker(self.integrations, self.task_clients)
        if self._front is not None:
            inner = self._front(inner)
        inner = CellTasks(self.cell_runtime, inner)
        return OwnTargetGuard(inner, own_resources(self.settings))

    @cached_property
    def stepper(self) -> Stepper:
        """The stepper of the transition queue (the stepper Lambda, the local pollers)."""
        return self._stepper(inline_tasks=self.inline_tasks and self.tasks_bus is None)

    @cached_property
    def runner(self) -> Stepper:
        """The stepper of the tasks queue: claims, runs and reports a batch's tasks side by side."""
        return self._stepper(
            inline_tasks=False, task_concurrency=RUNNER_BATCH_SIZE, task_runner=True
        )

    @cached_property
    def api_stepper(self) -> Stepper:
        """The API's stepper: commits and enqueues, never runs a task."""
        limits = self.settings.limits
        return self._stepper(
            inline_tasks=False,
            repair_delay=self.settings.repair_delay_seconds,
            failed_send_repair=REPAIR_DELAY_SECONDS,
            start_budgets=deployed_budgets(
                limits,
                time.monotonic,
                time.thread_time,
                defer_seconds=limits.api_decision_budget_seconds,
            ),
        )

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
            access=AccessControl(
                policy=AccessPolicy.from_json(self.settings.access_policy),
                pass_role=checker_from_setting(
                    self.settings.pass_role_check, lambda: self.client("iam")
                ),
            ),
            signer=self.signer,
            activity_lease_seconds=self.settings.activity_lease_seconds,
        )

    def _stepper(
        self,
        *,
        inline_tasks: bool,
        repair_delay: int = 0,
        failed_send_repair: int = 0,
        start_budgets: Callable[[], Budget] | None = None,
        task_concurrency: int = 1,
        task_runner: bool = False,
    ) -> Stepper:
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
            failed_send_repair=failed_send_repair,
            limits=self.settings.limits,
            budgets=deployed_budgets(self.settings.limits, time.monotonic, time.thread_time),
            start_budgets=start_budgets,
            check_parameters=self.check_parameters,
            item_source=S3ItemSource(self.task_clients, own_resources(self.settings)),
            result_sink=S3ResultSink(self.task_clients, own_resources(self.settings)),
            map_run_check=None if self.start_checker is None else MapRunStarts(self.start_checker),
            task_concurrency=task_concurrency,
            task_runner=task_runner,
            lone_task_groups=self.settings.claims_in_events,
        )


def build(
    settings: Settings | None = None,
    *,
    clients: dict[str, Any] | None = None,
    invoker: TaskInvoker | None = None,
    clock: Callable[[], float] = time.time,
    inline_tasks: bool = True,
    endpoint_url: str | None = None,
    front: Callable[[TaskInvoker], TaskInvoker] | None = None,
    endpoint_credentials: dict[str, str] | None = None,
    service_endpoints: dict[str, str] | None = None,
    check_parameters: ParameterCheck | None = None,
    denied_endpoints: DeniedEndpoints | None = None,
) -> Wiring:
    """The wiring of ``settings`` (default: read from the environment)."""
    return Wiring(
        settings if settings is not None else Settings.from_environ(),
        clients=clients,
        invoker=invoker,
        clock=clock,
        inline_tasks=inline_tasks,
        endpoint_url=endpoint_url,
        front=front,
        endpoint_credentials=endpoint_credentials,
        service_endpoints=service_endpoints,
        check_parameters=check_parameters,
        denied_endpoints=denied_endpoints,
    )
