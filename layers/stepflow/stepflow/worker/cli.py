"""``stepflow worker``: run a worker process.

``stepflow worker --activity NAME module:handler`` runs an activity's tasks
with a handler; ``stepflow worker --cells module[,module] --queue q --table T``
runs the cells routed to cell queue ``q`` (``STEPFLOW_CELL_QUEUES``), with
their effect journal in the coordination table ``T`` (docs/cells-workers.md).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlparse

import boto3

from stepflow.api.client import client as stepflow_client
from stepflow.cells import EffectHandlers, load_modules
from stepflow.cells.queues import CellQueueError, CellQueues
from stepflow.integrations.http_denied import DeniedEndpoints, endpoint_of, resolve
from stepflow.local.hosts import is_loopback
from stepflow.proxy.signing import is_api_gateway, worker_client, worker_config
from stepflow.runtime.leases import LeaseLog
from stepflow.runtime.targets import OwnResources
from stepflow.worker.cells import CellHandler, cell_activity
from stepflow.worker.client import ReleasingClient
from stepflow.worker.health import HealthServer
from stepflow.worker.logs import configure
from stepflow.worker.runner import Handler, Worker
from stepflow.worker.signals import leave
from stepflow.worker.signature import HandlerSignatureError, as_handler


class WorkerUsageError(Exception):
    """The command line cannot be used (reported in one line, exit status 2)."""


@dataclass
class WorkerOptions:
    """The options of ``stepflow worker`` (see ``stepflow worker --help``)."""

    handler: str | None = None
    activity: str | None = None
    cells: str | None = None
    queue: str | None = None
    table: str | None = None
    dynamodb_endpoint: str | None = None
    own_resources: str | None = None
    concurrency: int = 8
    endpoint_url: str | None = None
    region: str = "us-east-1"
    api: str | None = None
    """A deployed StepFlow API's URL: every call signed for ``execute-api``."""
    api_region: str | None = None
    """``--region`` when typed on the command line: an API Gateway URL (``--api`` or
    ``--endpoint-url``) is signed for it, else for the URL's own region."""
    name: str | None = None
    heartbeat: float = 10.0
    grace: float = 30.0
    health_port: int | None = None
    health_host: str = "127.0.0.1"


def run(
    args: WorkerOptions,
    err: TextIO = sys.stderr,
    client: Any = None,
    log: LeaseLog | None = None,
) -> int:
    """Run the worker the parsed ``args`` describe until SIGTERM/SIGINT; the exit status.

    ``client`` replaces the boto3 Step Functions client, ``log`` the cells'
    coordination log (default: the DynamoDB table ``--table``).
    """
    configure(err)
    worker = build(args, client, log)
    worker.install_signal_handlers(hard_exit=True)
    return _serve(worker, args, err)


def build(args: WorkerOptions, client: Any = None, log: LeaseLog | None = None) -> Worker:
    """The worker ``args`` describe (an activity's handler, or a cell queue's cells)."""
    if args.concurrency < 1:
        raise WorkerUsageError("--concurrency must be at least 1")
    cells = bool(args.cells or args.queue)
    if cells and (args.handler or args.activity):
        raise WorkerUsageError("give either --cells and --queue, or --activity and a handler")
    if not cells and not (args.handler and args.activity):
        raise WorkerUsageError("give --activity and a handler (or --cells and --queue)")
    handler: Handler = _cell_handler(args, log) if cells else load_handler(args.handler or "")
    if client is None:
        client = _client(args)
    try:
        if cells:
            arn = cell_activity(client, args.queue or "")
        else:
            arn = resolve_activity(client, args.activity or "")
    except WorkerUsageError:
        raise
    except Exception as exc:  # unreachable endpoint, no credentials, access denied, ...
        doing = "create the cell queue's activity" if cells else "list activities"
        raise WorkerUsageError(f"cannot {doing}: {exc}") from exc
    return Worker(
        client,
        arn,
        handler,
        concurrency=args.concurrency,
        name=args.name,
        heartbeat_seconds=args.heartbeat,
        grace_seconds=args.grace,
    )


def _cell_handler(args: WorkerOptions, log: LeaseLog | None) -> CellHandler:
    """The cells of ``--cells``, journaled in ``log`` or the table ``--table``."""
    if not args.cells or not args.queue:
        raise WorkerUsageError("--cells and --queue go together")
    try:
        CellQueues.parse(f"*={args.queue}")
    except CellQueueError as exc:
        raise WorkerUsageError(f"--queue: {exc}") from None
    _importable_from_cwd()
    try:
        modules = load_modules(n for n in args.cells.split(",") if n.strip())
    except Exception as exc:  # a missing module, a bad cell (registration refused), ...
        raise WorkerUsageError(f"cannot load --cells {args.cells}: {exc}") from exc
    if not modules.cells.keys():
        raise WorkerUsageError(f"--cells {args.cells} defines no cell")
    if log is None:
        if not args.table:
            raise WorkerUsageError("--table (or STEPFLOW_TABLE) names the coordination table")
        from stepflow.aws.dynamodb_log import DynamoDBLog

        dynamodb = boto3.client(
            "dynamodb", endpoint_url=args.dynamodb_endpoint, region_name=args.region
        )
        log = DynamoDBLog(args.table, client=dynamodb)
    from stepflow.aws.role_clients import RoleClients

    clients = RoleClients(assume_roles=False, region=args.region)
    return CellHandler(modules, log, clients, builtin=_builtin(args, clients))


def _builtin(args: WorkerOptions, clients: Any) -> EffectHandlers:
    """The built-in effects' handlers, as the stepper's: HTTP, and AWS with the worker's clients.

    An AWS effect never names one of the stack's own resources
    (:func:`own_resources_of`); an HTTP effect never reaches the stack's own
    endpoints (:func:`denied_endpoints_of`), nor this machine (loopback) unless
    the worker talks to a local StepFlow (``--endpoint-url`` on loopback, as
    against ``stepflow local``).
    """
    from stepflow.integrations.catalog import default_registry
    from stepflow.integrations.effect_handlers import builtin_handlers
    from stepflow.integrations.effect_http import EffectHttp

    local = is_loopback(urlparse(args.endpoint_url).hostname if args.endpoint_url else None)
    http = EffectHttp(denied=denied_endpoints_of(args), allow_loopback=local)
    return builtin_handlers(default_registry(), clients, http, own_resources_of(args))


def own_resources_of(args: WorkerOptions, environ: Mapping[str, str] | None = None) -> OwnResources:
    """The stack's own resources, read as a stepper reads them, plus ``--table``.

    ``environ`` (the process environment if None) holds the stack's settings
    when the worker runs beside it: ``QUEUE_URL``, ``TASKS_QUEUE_URL``,
    ``PAYLOAD_BUCKET``, ``STEPFLOW_OWN_QUEUES``, ``STEPFLOW_OWN_FUNCTIONS``,
    ``ACTIVITY_DLQ_ARN``, ``STEPFLOW_SIGNING_SECRET_ARN``, ``TASK_QUEUE_PREFIX``
    (the CDK worker service sets them all; :func:`stepflow.aws.own_resources.own_resources`
    reads them). Without them the worker guards the table and the activity
    queues' prefixes only: it guards what it is told.
    """
    from pydantic import ValidationError

    from stepflow.aws.own_resources import own_resources
    from stepflow.aws.settings import Settings

    settings = dict(os.environ if environ is None else environ)
    settings["TABLE_NAME"] = args.table or settings.get("TABLE_NAME") or ""
    try:
        own = own_resources(Settings.from_environ(settings))
    except ValidationError as exc:
        raise WorkerUsageError(
            f"the StepFlow settings in the environment are invalid: {exc}"
        ) from None
    if not args.own_resources:
        return own
    more = _parse_own_resources(args.own_resources)
    return OwnResources(
        functions=own.functions | more.functions,
        queues=own.queues | more.queues,
        queue_prefixes=tuple(dict.fromkeys((*own.queue_prefixes, *more.queue_prefixes))),
        tables=own.tables | more.tables,
        buckets=own.buckets | more.buckets,
        secrets=own.secrets | more.secrets,
    )


OWN_RESOURCE_KINDS = ("functions", "queues", "queue_prefixes", "tables", "buckets", "secrets")
"""The keys of ``--own-resources`` (the arguments of :meth:`OwnResources.of`)."""


def _parse_own_resources(text: str) -> OwnResources:
    """``--own-resources``: a JSON object of name lists, or ``@FILE`` holding one."""
    source = "--own-resources"
    if text.startswith("@"):
        source = text[1:]
        try:
            with open(source, encoding="utf-8") as file:
                text = file.read()
        except OSError as exc:
            raise WorkerUsageError(f"--own-resources: cannot read {source}: {exc}") from None
    try:
        given = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise WorkerUsageError(f"{source} is not JSON: {exc}") from None
    if not isinstance(given, dict):
        raise WorkerUsageError(f"{source} must be a JSON object of name lists")
    unknown = sorted(set(given) - set(OWN_RESOURCE_KINDS))
    if unknown:
        raise WorkerUsageError(f"{source}: unknown keys {unknown}; known: {OWN_RESOURCE_KINDS}")
    for kind, names in given.items():
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise WorkerUsageError(f"{source}: {kind} must be a list of strings")
    return OwnResources.of(**given)


def denied_endpoints_of(
    args: WorkerOptions, environ: Mapping[str, str] | None = None
) -> DeniedEndpoints:
    """The endpoints no HTTP effect of this worker may reach: its API, DynamoDB's, AWS's.

    ``--endpoint-url`` (the stack's API), ``--dynamodb-endpoint`` and
    ``AWS_ENDPOINT_URL`` (moto or LocalStack, which check no signature).
    An API Gateway host is denied by its name only: its addresses are the
    region's API Gateway front ends, shared by every other API.
    """
    environ = os.environ if environ is None else environ
    urls = [args.endpoint_url, args.dynamodb_endpoint, environ.get("AWS_ENDPOINT_URL")]
    shared: set[str] = set()
    named: list[str] = []
    for url in filter(None, urls):
        named.append(url)
        endpoint = endpoint_of(url)
        if endpoint is not None and is_api_gateway(url):
            host, port = endpoint
            shared.add(host.rstrip("."))
            named.append(f"https://{host.rstrip('.')}.:{port}")  # the fully qualified spelling

    def resolver(host: str, port: int) -> list[str]:
        return [] if host.lower().rstrip(".") in shared else resolve(host, port)

    return DeniedEndpoints(named, resolver=resolver)


def _serve(worker: Worker, args: WorkerOptions, err: TextIO) -> int:
    """Run ``worker`` (with its health endpoint) until it stops; the exit status."""
    health = None
    if args.health_port is not None:
        health = HealthServer(worker.status, args.health_host, args.health_port).start()
        err.write(f'{{"message": "health endpoint", "port": {health.port}}}\n')
        err.flush()
    try:
        worker.run()
    finally:
        if health is not None:
            health.stop()
    if worker.signalled is not None and worker.abandoned:
        leave(0)  # threads stuck in a handler must not crash interpreter finalization
    return 0


def _importable_from_cwd() -> None:
    """Like ``python -m``: modules in the working directory load."""
    if "" not in sys.path:
        sys.path.insert(0, "")


def load_handler(spec: str) -> Handler:
    """The callable named by ``module:function``, as an ``(input, context)`` handler.

    It may take ``(input)`` or ``(input, context)`` (:mod:`stepflow.worker.signature`);
    any other signature is a usage error, reported before anything polls.
    """
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise WorkerUsageError(f"handler {spec!r} is not module:function")
    _importable_from_cwd()
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise WorkerUsageError(f"cannot import {module_name!r}: {exc}") from exc
    if not hasattr(module, attribute):
        raise WorkerUsageError(f"module {module_name!r} has no {attribute!r}")
    try:
        return as_handler(getattr(module, attribute), repr(spec))
    except HandlerSignatureError as exc:
        raise WorkerUsageError(str(exc)) from None


def resolve_activity(client: Any, activity: str) -> str:
    """The ARN of ``activity`` (a name is looked up with ListActivities)."""
    if activity.startswith("arn:"):
        return activity
    token = None
    while True:
        page = client.list_activities(**({"nextToken": token} if token else {}))
        for found in page.get("activities", []):
            if found.get("name") == activity:
                return str(found["activityArn"])
        token = page.get("nextToken")
        if not token:
            raise WorkerUsageError(f"no activity named {activity!r}")


def _client(args: WorkerOptions) -> Any:
    """The Step Functions client of ``--api`` or ``--endpoint-url``.

    An API Gateway URL (or any ``--api``) is signed for ``execute-api`` in the
    URL's region unless ``--region`` was typed (:func:`worker_client`).
    """
    if args.api is not None and args.endpoint_url:
        raise WorkerUsageError("give --api or --endpoint-url, not both")
    if args.api is None and not is_api_gateway(args.endpoint_url):
        return api_client(args.endpoint_url, args.region)
    flag = "--api" if args.api is not None else "--endpoint-url"
    try:
        return worker_client(args.api or args.endpoint_url or "", region=args.api_region)
    except ValueError as exc:  # no region known for a custom domain
        raise WorkerUsageError(f"{flag}: {exc}") from None


def api_client(endpoint_url: str | None, region: str | None) -> ReleasingClient:
    """The Step Functions client of ``endpoint_url`` (None: AWS's), in ``region``.

    Behind API Gateway (a deployed stack's ``ApiUrl``, IAM-authorized) it is
    :func:`~stepflow.proxy.signing.worker_client`, signed for ``execute-api``
    (``region`` None: the URL's); else signed for ``states``. ReleaseTask is
    signed the same way.
    """
    if is_api_gateway(endpoint_url):
        return worker_client(endpoint_url or "", region=region)
    config = worker_config()
    sfn = (
        stepflow_client(endpoint_url, region=region, config=config)
        if endpoint_url
        else boto3.client("stepfunctions", region_name=region, config=config)
    )
    return ReleasingClient(sfn, _credentials(region), signing_name="states")


def _credentials(region: str | None) -> Any:
    """The credentials a default boto3 client resolves (to sign ReleaseTask); None if none."""
    return boto3.session.Session(region_name=region).get_credentials()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m stepflow.worker``: the same as ``stepflow worker``."""
    from stepflow.cli import main as stepflow_main

    return stepflow_main(["worker", *(sys.argv[1:] if argv is None else argv)])
