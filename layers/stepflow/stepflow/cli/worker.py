"""``stepflow worker``: run an activity's tasks, or a cell queue's cells, in this process."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from stepflow.cli.inputs import UsageError

__all__ = ["worker_command", "worker_options"]


@click.command("worker")
@click.argument("handler", required=False, metavar="[MODULE:FUNCTION]")
@click.option("--activity", help="activity name or ARN (with a handler)")
@click.option(
    "--cells", help="cells modules, comma-separated (dotted names or .py paths), with --queue"
)
@click.option("--queue", help="the cell queue to serve (STEPFLOW_CELL_QUEUES)")
@click.option(
    "--table",
    envvar=["STEPFLOW_TABLE", "TABLE_NAME"],
    help="the coordination table the cells' effect journal is in (with --cells)",
)
@click.option(
    "--dynamodb-endpoint",
    envvar="STEPFLOW_DYNAMODB_ENDPOINT",
    help="DynamoDB's endpoint (stepflow local prints it); default: AWS's",
)
@click.option(
    "--own-resources",
    help="more of the stack's own resources no AWS effect may name, beyond the settings "
    'environment: JSON {"queues": [...], "buckets": [...], "functions": [...], '
    '"tables": [...], "queue_prefixes": [...], "secrets": [...]}, or @FILE holding it',
)
@click.option("--concurrency", type=int, default=8, show_default=True, help="tasks in hand at once")
@click.option("--endpoint-url", envvar="STEPFLOW_ENDPOINT", help="the StepFlow API's URL")
@click.option(
    "--api",
    metavar="URL",
    help="a deployed StepFlow API (its ApiUrl): calls signed for execute-api with your AWS "
    "credentials, in the URL's region unless --region is given",
)
@click.option(
    "--region",
    envvar="AWS_DEFAULT_REGION",
    default="us-east-1",
    show_default=True,
    help="the API's region; an API Gateway URL (--api, --endpoint-url) signs for the URL's "
    "region unless --region is given",
)
@click.option("--name", help="worker name reported to GetActivityTask")
@click.option("--heartbeat", type=float, default=10.0, help="seconds between heartbeats")
@click.option("--grace", type=float, default=30.0, help="seconds to drain on SIGTERM")
@click.option("--health-port", type=int, default=None, help="serve GET /health here")
@click.option("--health-host", default="127.0.0.1", show_default=True)
def worker_command(**options: Any) -> int:
    """Run an activity's tasks with a Python handler.

    Or, with --cells and --queue, the cells routed to a cell queue.
    """
    from stepflow.worker import cli as worker_cli

    options["api_region"] = _api_region(click.get_current_context())
    try:
        return worker_cli.run(worker_cli.WorkerOptions(**options))
    except worker_cli.WorkerUsageError as exc:
        raise UsageError(str(exc)) from exc


def worker_options(argv: Sequence[str]) -> Any:
    """``argv`` (what follows ``stepflow worker``) parsed into ``WorkerOptions``, nothing run."""
    from stepflow.worker.cli import WorkerOptions

    context = worker_command.make_context("stepflow worker", list(argv))
    return WorkerOptions(**context.params, api_region=_api_region(context))


def _api_region(context: click.Context) -> str | None:
    """``--region`` when typed on the command line.

    An API Gateway URL (``--api`` or ``--endpoint-url``) then signs for it, not the URL's.
    """
    source = context.get_parameter_source("region")
    explicit = source is click.core.ParameterSource.COMMANDLINE
    return str(context.params["region"]) if explicit else None
