"""``stepflow graph``: draw a state machine as Mermaid, DOT or SVG, optionally an execution's."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from stepflow.graph.history import HistoryClient, HistoryError, read_history
from stepflow.graph.model import GraphError, build_graph, node_statuses
from stepflow.graph.render import to_dot, to_mermaid
from stepflow.graph.status import Status
from stepflow.graph.svg import GraphvizError, to_svg

__all__ = ["fetch_history", "graph_command"]

_PAGE_SIZE = 1000


def fetch_history(
    client: HistoryClient, execution_arn: str, page_size: int = _PAGE_SIZE
) -> list[dict[str, Any]]:
    """Every event of an execution (:func:`~stepflow.graph.history.read_history`), or exit 1."""
    try:
        return read_history(client, execution_arn, page_size)
    except HistoryError as error:
        raise click.ClickException(str(error)) from None


def _client(endpoint_url: str | None, region: str) -> Any:
    import boto3  # the model and renderers load without boto3

    return boto3.client("stepfunctions", endpoint_url=endpoint_url or None, region_name=region)


def _read_definition(file: str) -> Any:
    """FILE (JSON or YAML, by its suffix) or standard input (JSON, else YAML), unsubstituted.

    Read by the definitions' own reader; ``${Key}`` placeholders stay as text (a
    graph needs no values), so a SAM definition draws without ``--sub``.
    """
    from stepflow.definitions import DefinitionFileError, read_document

    if file != "-":
        try:
            return read_document(file)
        except DefinitionFileError as error:
            raise click.BadParameter(str(error), param_hint="FILE") from None
    try:
        text = sys.stdin.read()
    except (OSError, UnicodeDecodeError) as error:
        reason = f"cannot read standard input: {error}"
        raise click.BadParameter(reason, param_hint="FILE") from None
    return _parse(text, "standard input")


def _parse(text: str, where: str) -> Any:
    """JSON, else YAML (as ``stepflow run`` reads a ``.yaml`` file)."""
    from stepflow.definitions import YamlError, load_yaml

    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        json_error = error
    try:
        return load_yaml(text)
    except (YamlError, RecursionError):
        raise click.BadParameter(
            f"{where} is not JSON ({json_error}) nor YAML", param_hint="FILE"
        ) from None


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
    """Draw the state machine in FILE (JSON or YAML; '-' for standard input) as a graph.

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
