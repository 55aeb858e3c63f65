"""``stepflow worker --activity NAME module:handler``: run a worker process."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import boto3
from botocore.config import Config

from stepflow.worker.client import ReleasingClient
from stepflow.worker.health import HealthServer
from stepflow.worker.logs import configure
from stepflow.worker.runner import Handler, Worker
from stepflow.worker.signals import leave


class WorkerUsageError(Exception):
    """The command line cannot be used (reported in one line, exit status 2)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``worker`` subcommand's options."""
    parser.add_argument("handler", help="the handler as module:function (module on sys.path)")
    parser.add_argument("--activity", required=True, help="activity name or ARN")
    parser.add_argument("--concurrency", type=int, default=8, help="tasks in hand at once")
    parser.add_argument("--endpoint-url", default=os.environ.get("STEPFLOW_ENDPOINT"))
    parser.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    parser.add_argument("--name", help="worker name reported to GetActivityTask")
    parser.add_argument("--heartbeat", type=float, default=10.0, help="seconds between heartbeats")
    parser.add_argument("--grace", type=float, default=30.0, help="seconds to drain on SIGTERM")
    parser.add_argument("--health-port", type=int, default=None, help="serve GET /health here")
    parser.add_argument("--health-host", default="127.0.0.1")


def run(args: argparse.Namespace, err: TextIO = sys.stderr, client: Any = None) -> int:
    """Run the worker the parsed ``args`` describe until SIGTERM/SIGINT; the exit status."""
    configure(err)
    if args.concurrency < 1:
        raise WorkerUsageError("--concurrency must be at least 1")
    handler = load_handler(args.handler)
    if client is None:
        client = ReleasingClient(
            _boto3_client(args.endpoint_url, args.region), _credentials(args.region)
        )
    try:
        arn = resolve_activity(client, args.activity)
    except WorkerUsageError:
        raise
    except Exception as exc:  # unreachable endpoint, no credentials, access denied, ...
        raise WorkerUsageError(f"cannot list activities: {exc}") from exc
    worker = Worker(
        client,
        arn,
        handler,
        concurrency=args.concurrency,
        name=args.name,
        heartbeat_seconds=args.heartbeat,
        grace_seconds=args.grace,
    )
    worker.install_signal_handlers(hard_exit=True)
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


def load_handler(spec: str) -> Handler:
    """The callable named by ``module:function``."""
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise WorkerUsageError(f"handler {spec!r} is not module:function")
    if "" not in sys.path:
        sys.path.insert(0, "")  # like python -m: modules in the working directory load
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise WorkerUsageError(f"cannot import {module_name!r}: {exc}") from exc
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise WorkerUsageError(f"{spec!r} is not a callable")
    result: Handler = handler
    return result


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


def _boto3_client(endpoint_url: str | None, region: str) -> Any:
    config = Config(
        read_timeout=70,  # GetActivityTask long-polls for up to 60 s
        retries={"mode": "standard"},
    )
    return boto3.client(
        "stepfunctions", endpoint_url=endpoint_url, region_name=region, config=config
    )


def _credentials(region: str) -> Any:
    """The credentials a default boto3 client resolves (to sign ReleaseTask); None if none."""
    return boto3.session.Session(region_name=region).get_credentials()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m stepflow.worker``."""
    parser = argparse.ArgumentParser(prog="stepflow worker", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except WorkerUsageError as exc:
        sys.stderr.write(f"stepflow worker: {exc}\n")
        return 2
