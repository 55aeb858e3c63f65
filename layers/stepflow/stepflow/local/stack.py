"""The local stack: StepFlow's AWS deployment, in one process.

moto's server stands in for DynamoDB, SQS and S3 (or ``endpoint`` points at
LocalStack or any AWS-compatible endpoint); the table, queues and bucket are
created from :mod:`stepflow.aws.topology`, as the CDK stack creates them; the
real API and stepper Lambda handlers run in-process, behind an HTTP server
acting as API Gateway (:mod:`stepflow.local.gateway`) and SQS pollers acting as
the event source mapping (:mod:`stepflow.local.pollers`).
"""

from __future__ import annotations

import importlib
import json
import shlex
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from stepflow.api import lambda_handler
from stepflow.api.access import AccessPolicy
from stepflow.api.pass_role import checker_from_setting
from stepflow.aws import hooks_lambda, topology
from stepflow.aws import stepper_lambda as stepper_handler
from stepflow.aws.outbox_repair import from_wiring
from stepflow.aws.own_resources import own_resources
from stepflow.aws.settings import OUTBOX_REPAIR_AGE_SECONDS
from stepflow.aws.sqs_bus import RUNNER_BATCH_SIZE, create_queues
from stepflow.aws.wiring import Wiring, build
from stepflow.cells.queues import CellQueues
from stepflow.hooks import Hook
from stepflow.integrations import default_registry
from stepflow.integrations.http_denied import DeniedEndpoints
from stepflow.limits import Limits
from stepflow.local import moto_patches
from stepflow.local.banner import banner_lines
from stepflow.local.gateway import Gateway
from stepflow.local.invocation import RUNNER, STEPPER, Invocation
from stepflow.local.mocks import TestCases
from stepflow.local.moto_process import MotoProcess
from stepflow.local.pollers import Pollers
from stepflow.local.routes import local_routes
from stepflow.local.stack_parts import (
    RepairLoop,
    ensure_bucket,
    ensure_table,
    fresh_moto,
    release_moto,
)
from stepflow.local.stack_settings import BUCKET as BUCKET
from stepflow.local.stack_settings import CREDENTIALS as CREDENTIALS
from stepflow.local.stack_settings import FUNCTIONS as FUNCTIONS
from stepflow.local.stack_settings import QUEUE as QUEUE
from stepflow.local.stack_settings import REGION as REGION
from stepflow.local.stack_settings import TABLE as TABLE
from stepflow.local.stack_settings import TASKS_QUEUE as TASKS_QUEUE
from stepflow.local.stack_settings import _environment_limits as _environment_limits
from stepflow.local.stack_settings import local_settings
from stepflow.local.stream_poller import StreamPoller, ensure_stream
from stepflow.local.verbosity import set_verbosity
from stepflow.runtime import TaskInvoker
from stepflow.testing.handlers import Handler, task_invoker, unbound_check
from stepflow.testing.mocks import MockConfig, root_of


class CellsLoadError(RuntimeError):
    """A cells module given to the stack cannot be loaded."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class LocalStack:
    """Starts and stops the local stack; ``url`` is the Step Functions endpoint."""

    host: str = "127.0.0.1"
    port: int = 8765
    endpoint: str | None = None
    handlers: Mapping[str, Handler] = field(default_factory=dict)
    pollers: int = 4
    runners: int = 4
    stepper_timeout: float | None = None
    """Emulates the stepper function's timeout (seconds): an overrunning batch is abandoned.
    The handlers' Lambda contexts count down from the deployed functions' timeouts (the
    stepper's 30 s, the runner's 900 s), whatever this is (see :class:`.Pollers`)."""
    repair_every: float = 60.0
    """Seconds between two passes of the outbox repair job (a schedule in the CDK stack)."""
    repair_age: int = OUTBOX_REPAIR_AGE_SECONDS
    """The job re-sends outboxes pending longer than this (seconds)."""
    assume_roles: bool = False
    """Call STS AssumeRole for each task's role (moto's STS); off: process credentials."""
    limits: Limits | None = None
    """StepFlow's limits (None: the process environment's ``STEPFLOW_<NAME>``, else defaults)."""
    access_policy: str = ""
    """JSON access rules (``STEPFLOW_ACCESS_POLICY``; empty: none)."""
    check_roles: str = "off"
    """iam:PassRole: ``off`` (local's default: no IAM), ``iam`` (SimulatePrincipalPolicy on
    the endpoint, e.g. LocalStack; moto lacks it) or a JSON table of grants."""
    principals: Mapping[str, str] = field(default_factory=dict)
    """Access key -> principal ARN (default ``arn:aws:iam::<account>:user/<access key>``)."""
    dynamodb_endpoint: str | None = None
    """DynamoDB's own endpoint (e.g. DynamoDB Local next to LocalStack); None: ``endpoint``."""
    cells: str = ""
    """Cells modules the steppers load (``STEPFLOW_CELLS``: ``.py`` paths or dotted modules,
    comma-separated); loaded at start, so a module that cannot load stops the start."""
    poll_seconds: float | None = None
    """How often ``.sync`` jobs are polled (None: ``STEPFLOW_POLL_SECONDS``, else AWS's
    schedule, once a minute for ten minutes then every five)."""
    cell_queues: str = ""
    """Cells that run on task queues (``STEPFLOW_CELL_QUEUES``), served by
    ``stepflow worker --cells`` (see :meth:`worker_commands`)."""
    activity_lease_seconds: int | None = None
    """An activity or cell task's lease without ``HeartbeatSeconds`` (None: the setting's)."""
    hook_names: str = ""
    """Hooks the dispatcher runs (``STEPFLOW_HOOKS``: ``metrics,eventbridge,webhooks``)."""
    hooks: Sequence[Hook] = ()
    """Python hooks run after the named ones (tests, scripts). With either, a stream
    poller feeds the hooks dispatcher's handler from the table's stream."""
    verbosity: int | None = None
    """What the stack prints (:mod:`stepflow.local.verbosity`): 0 warnings and errors,
    1 the functions' JSON logs, 2 also metrics and moto's access log; None: logging is
    left as the process set it (``stepflow local`` passes 0 unless ``-v``)."""
    mock_config: str | Mapping[str, Any] | MockConfig | None = None
    """Step Functions Local's ``MockConfigFile.json`` (a path or its object): a start whose
    state machine ARN ends in ``#<TestCase>`` runs that test case (see :mod:`.mocks`)."""
    moto_process: bool = False
    """Run moto's server in a child process (a second core; :mod:`stepflow.local.moto_process`)
    instead of a thread of this one. Ignored with ``endpoint``."""
    url: str = ""
    aws_endpoint: str = ""
    test_cases: TestCases | None = None
    wiring: Wiring | None = None
    _moto: Any = None
    _gateway: Gateway | None = None
    _restore_logging: Callable[[], None] | None = None
    _counted: bool = False  # one of the process's embedded stacks on the in-process moto
    _pollers: Pollers | None = None
    _runners: Pollers | None = None
    _repair: RepairLoop | None = None
    _streams: StreamPoller | None = None

    def start(self) -> LocalStack:
        """Bring everything up; returns self once the endpoint answers.

        Raises ValueError on a malformed ``access_policy``, ``check_roles`` or
        ``stepper_timeout``, before anything starts.
        """
        if self.stepper_timeout is not None:
            Invocation.begin(STEPPER.name, self.stepper_timeout)
        AccessPolicy.from_json(self.access_policy)
        CellQueues.parse(self.cell_queues)
        if self.mock_config is not None:  # a MockConfigError is a ValueError
            config = MockConfig.load(self.mock_config)
            self.test_cases = TestCases(config, self._root_of, self._status_of)
        checker_from_setting(self.check_roles, lambda: None)
        if self.verbosity is not None:
            self._restore_logging = set_verbosity(self.verbosity)
        if self.endpoint is not None:
            self.aws_endpoint = self.endpoint
        elif self.moto_process:
            self._moto = MotoProcess("127.0.0.1", free_port()).start()
            self.aws_endpoint = self._moto.endpoint
        else:
            server = importlib.import_module("moto.server")
            # One request at a time; a transaction copies the items it touches, not the
            # table (moto's copy made each commit O(table), a map run O(N^2)).
            moto_patches.install()
            moto_port = free_port()
            self._moto = server.ThreadedMotoServer(
                ip_address="127.0.0.1", port=moto_port, verbose=False
            )
            self._moto.start()
            self.aws_endpoint = f"http://127.0.0.1:{moto_port}"
            self._counted = True  # before the reset: stop() uncounts it even if that fails
            fresh_moto(self.aws_endpoint)
        dynamodb, sqs, s3 = (self.client(name) for name in ("dynamodb", "sqs", "s3"))
        ensure_table(dynamodb, TABLE)
        queue_url, dlq_url = create_queues(sqs, QUEUE)
        tasks_url, tasks_dlq_url = create_queues(
            sqs, TASKS_QUEUE, visibility_timeout=topology.TASKS_QUEUE.visibility_timeout
        )
        ensure_bucket(s3, BUCKET)
        settings = local_settings(
            self,
            queue_url=queue_url,
            dlq_url=dlq_url,
            tasks_url=tasks_url,
            tasks_dlq_url=tasks_dlq_url,
        )
        clients = {
            "dynamodb": dynamodb,
            "sqs": sqs,
            "s3": s3,
            "lambda": self.client("lambda"),
            "sts": self.client("sts"),
            "iam": self.client("iam"),
        }
        # Tasks reach DynamoDB where the stack's table is, and Step Functions at
        # this stack's own API (filled in once the gateway listens).
        endpoints = {"dynamodb": self.dynamodb_endpoint} if self.dynamodb_endpoint else {}
        # moto (and DynamoDB Local) check no signature: no HTTP task may reach them,
        # nor this stack's API (added once it listens).
        denied = DeniedEndpoints([self.aws_endpoint, self.dynamodb_endpoint or ""])
        self.wiring = build(
            settings,
            clients=clients,
            front=self._front(),
            endpoint_url=self.aws_endpoint,
            endpoint_credentials=CREDENTIALS,
            service_endpoints=endpoints,
            check_parameters=unbound_check(self.handlers, default_registry().parameters_problem)
            if self.handlers
            else None,
            denied_endpoints=denied,
        )
        try:
            self.wiring.cell_modules  # noqa: B018 - loaded now: a broken module fails the start
        except Exception as exc:  # whatever the module raises, the fault is in the cells given
            self.stop()
            raise CellsLoadError(
                f"cannot load cells {self.cells}: {type(exc).__name__}: {exc}"
            ) from exc
        stepper_handler.configure(
            self.wiring.stepper, self.wiring.signer, self.wiring.message_store
        )
        stepper_handler.configure_runner(self.wiring.runner)
        lambda_handler.configure(self.wiring.service)
        self._gateway = Gateway(
            self.host,
            self.port,
            lambda_handler.handler
            if self.test_cases is None
            else self.test_cases.gateway(lambda_handler.handler),
            account=settings.account,
            principals=self.principals,
            routes=local_routes(self),
        ).start()
        self.url = self._gateway.url
        endpoints["stepfunctions"] = self.url
        denied.add(self.url)
        self._pollers = Pollers(
            sqs,
            queue_url,
            stepper_handler.handler,
            self.pollers,
            timeout=self.stepper_timeout,
            function=STEPPER,
        ).start()
        # The task runner: up to ten tasks per invocation, side by side (a slow one holds no other).
        self._runners = Pollers(
            sqs,
            tasks_url,
            stepper_handler.runner_handler,
            self.runners,
            batch_size=RUNNER_BATCH_SIZE,
            function=RUNNER,
        ).start()
        self._repair = RepairLoop(from_wiring(self.wiring), self.repair_every).start()
        if settings.hooks or self.hooks:
            try:
                runtime = hooks_lambda.runtime_from(self.wiring, self.hooks)
            except ValueError:  # an unknown hook name: nothing is left running
                self.stop()
                raise
            hooks_lambda.configure(runtime)
            stream = ensure_stream(dynamodb, TABLE)
            self._streams = StreamPoller(
                self.client("dynamodbstreams"), stream, hooks_lambda.handler
            ).start()
        return self

    @property
    def stream_poller(self) -> StreamPoller | None:
        """The hooks' stream poller (None: no hooks configured)."""
        return self._streams

    def client(self, service: str) -> Any:
        """A boto3 client of the AWS service behind the stack (moto or ``endpoint``)."""
        endpoint = self.aws_endpoint
        if service in ("dynamodb", "dynamodbstreams") and self.dynamodb_endpoint:
            endpoint = self.dynamodb_endpoint
        return boto3.client(service, endpoint_url=endpoint, region_name=REGION, **CREDENTIALS)

    def worker_commands(self) -> list[str]:
        """The ``stepflow worker`` command line of each cell queue (add ``--cells MODULE``)."""
        queues = sorted(set(CellQueues.parse(self.cell_queues).routes.values()))
        own = own_resources(self.wiring.settings) if self.wiring is not None else None
        # The stack's queues, bucket and functions, which the cells' AWS effects may not name.
        named = (
            json.dumps(
                {
                    "queues": sorted(own.queues),
                    "queue_prefixes": list(own.queue_prefixes),
                    "buckets": sorted(own.buckets),
                    "functions": sorted(own.functions),
                },
                separators=(",", ":"),
            )
            if own is not None
            else ""
        )
        return [
            f"stepflow worker --cells MODULE --queue {queue} --endpoint-url {self.url} "
            f"--table {TABLE} --dynamodb-endpoint {self.dynamodb_endpoint or self.aws_endpoint}"
            + (f" --own-resources {shlex.quote(named)}" if named else "")
            for queue in queues
        ]

    def stepfunctions(self) -> Any:
        """A boto3 Step Functions client for this stack's API endpoint (no ``sync-`` prefix)."""
        config = Config(inject_host_prefix=False)
        return boto3.client(
            "stepfunctions", endpoint_url=self.url, region_name=REGION, config=config, **CREDENTIALS
        )

    def banner_lines(self) -> list[str]:
        """What ``stepflow local`` prints under its first line (:mod:`stepflow.local.banner`)."""
        return banner_lines(self.url, self.worker_commands())

    def stop(self) -> None:
        """Stop the gateway, pollers, runners, the repair loop and moto, in a few seconds.

        The gateway stops first, so no request starts new work while the pollers
        finish their batches (at most a few seconds in all; a poller stuck in a
        batch is left behind). Requests in flight are cut off. Safe to call twice.
        """
        if self._gateway is not None:
            self._gateway.stop()
            self._gateway = None
        running = [p for p in (self._pollers, self._runners) if p is not None]
        for pollers in running:
            pollers.request_stop()
        deadline = time.monotonic() + 3.0
        for pollers in running:
            pollers.stop(timeout=max(0.0, deadline - time.monotonic()))
        self._pollers = self._runners = None
        if self._repair is not None:
            self._repair.stop(timeout=2.0)
            self._repair = None
        if self._streams is not None:
            self._streams.stop(timeout=2.0)
            self._streams = None
            hooks_lambda.configure(None)
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        if self._counted:
            self._counted = False
            release_moto()
        stepper_handler.configure(None)
        stepper_handler.configure_runner(None)
        lambda_handler.configure(None)
        if self._restore_logging is not None:
            self._restore_logging()
            self._restore_logging = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _front(self) -> Callable[[TaskInvoker], TaskInvoker] | None:
        """The Python handlers given run first; the integrations (moto, ``endpoint``) the rest."""
        cases = self.test_cases
        if not self.handlers and cases is None:
            return None
        handlers = dict(self.handlers)

        def front(integrations: TaskInvoker) -> TaskInvoker:
            inner = task_invoker(handlers, fallback=integrations) if handlers else integrations
            return inner if cases is None else cases.invoker(inner)

        return front

    def _status_of(self, execution_arn: str) -> str | None:
        """The status of an execution in the stack's log (None: no such execution)."""
        record = None if self.wiring is None else self.wiring.log.get(execution_arn)
        return None if record is None else record.status

    def _root_of(self, execution_arn: str) -> str:
        """The root execution of a task's execution (see :func:`.mocks.root_of`)."""
        if self.wiring is None:
            return execution_arn.split("#")[0]
        return root_of(self.wiring.log, execution_arn)
