"""``stepflow graph``: draw a state machine as Mermaid, DOT or SVG, optionally an execution's."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from stepflow.graph.model import GraphError, build_graph, node_statuses
from stepflow.graph.render import to_dot, to_mermaid
from stepflow.graph.status import Status
from stepflow.graph.svg import GraphvizError, to_svg

__all__ = ["MAX_HISTORY_PAGES", "fetch_history", "graph_command"]

#: The most GetExecutionHistory pages read for one execution (a guard against a looping server).
MAX_HISTORY_PAGES = 10_000
_PAGE_SIZE = 1000


def fetch_history(
    client: Any, execution_arn: str, page_size: int = _PAGE_SIZE
) -> list[dict[str, Any]]:
    """Every event of an execution, oldest first, paging GetExecutionHistory to the end."""
    events: list[dict[str, Any]] = []
    token: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_HISTORY_PAGES):
        request: dict[str, Any] = {
            "executionArn": execution_arn,
            "maxResults": page_size,
            "includeExecutionData": False,
        }
        if token:
            request["nextToken"] = token
        page = client.get_execution_history(**request)
        events.extend(page.get("events", []))
        token = page.get("nextToken")
        if not token:
            return events
        if token in seen:
            raise click.ClickException("GetExecutionHistory returned the same nextToken twice")
        seen.add(token)
    raise click.ClickException(f"the history has more than {MAX_HISTORY_PAGES} pages")


def _client(endpoint_url: str | None, region: str) -> Any:
    import boto3  # the model and renderers load without boto3

    return boto3.client("stepfunctions", endpoint_url=endpoint_url or None, region_name=region)


def _read_definition(file: str) -> Any:
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise click.BadParameter(f"cannot read {file}: {reason}", param_hint="FILE") from None
    return _parse(text, file)


def _parse(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise click.BadParameter(f"{where} is not JSON: {error}", param_hint="FILE") from None


def _render(fmt: str, definition: Any, statuses: Mapping[str, Status] | None) -> str:
    try:
        graph = build_graph(definition)
    except GraphError as error:
        raise click.BadParameter(str(error), param_hint="FILE") from None
    if fmt == "mermaid":
        return to_mermaid(graph, statuses)
    if fmt == "dot":
        return to_dot(graph, statuses)
    try:
        return to_svg(graph, statuses)
    except GraphvizError as error:
        raise click.ClickException(str(error)) from None


def _from_execution(
    file: str, execution_arn: str, endpoint_url: str | None, region: str
) -> tuple[Any, dict[str, Status]]:
    """The definition (FILE, or the execution's own when FILE is ``-``) and node statuses."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = _client(endpoint_url, region)
    try:
        if file == "-":
            described = client.describe_state_machine_for_execution(executionArn=execution_arn)
            definition = _parse(described["definition"], f"the definition of {execution_arn}")
        else:
            definition = _read_definition(file)
        events = fetch_history(client, execution_arn, _PAGE_SIZE)
    except (BotoCoreError, ClientError) as error:
        raise click.ClickException(f"cannot read execution {execution_arn}: {error}") from None
    try:
        return definition, node_statuses(definition, events)
    except GraphError as error:
        raise click.BadParameter(str(error), param_hint="FILE") from None


@click.command("graph")
@click.argument("file", metavar="FILE")
@click.option(
    "--execution",
    "execution_arn",
    metavar="ARN",
    help="colour each state with its status in this execution (GetExecutionHistory); "
    "with FILE '-' the definition is the execution's own",
)
@click.option(
    "--endpoint-url",
    default=lambda: os.environ.get("STEPFLOW_ENDPOINT"),
    show_default="$STEPFLOW_ENDPOINT",
    help="the StepFlow API (e.g. the URL `stepflow local` prints)",
)
@click.option(
    "--region",
    default=lambda: os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    show_default="$AWS_DEFAULT_REGION or us-east-1",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot", "svg"]),
    default="mermaid",
    show_default=True,
    help="svg needs Graphviz's `dot`",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    help="write here instead of standard output",
)
def graph_command(
    file: str,
    execution_arn: str | None,
    endpoint_url: str | None,
    region: str,
    fmt: str,
    output: str | None,
) -> None:
    """Draw the state machine in FILE (JSON; '-' for standard input) as a graph.

    Parallel branches and Map iterations are drawn as groups, Choice rules and
    Catchers as labelled edges. With --execution each state is coloured by its
    status: succeeded, failed, caught, running, aborted, timed-out or not-run.
    """
    statuses: dict[str, Status] | None = None
    if execution_arn:
        definition, statuses = _from_execution(file, execution_arn, endpoint_url, region)
    else:
        definition = _read_definition(file)
    text = _render(fmt, definition, statuses)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as error:
        raise click.ClickException(f"cannot write {output}: {error.strerror or error}") from None
