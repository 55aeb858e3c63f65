"""``stepflow run`` and ``stepflow validate``: a workflow in memory, a definition checked."""

from __future__ import annotations

import json
import sys

import click

from stepflow.asl import DefinitionError
from stepflow.cli.inputs import UsageError, load_cells, load_handlers, load_json, read_input
from stepflow.cli.progress import Progress, clock, status_style
from stepflow.integrations.validation import validate_definition
from stepflow.testing import ExecutionResult, execute

__all__ = ["CELLS_HELP", "run_command", "validate_command"]

CELLS_HELP = "cells modules (.py files or dotted modules): their stepflow:cell:* tasks run inline"


@click.command("run")
@click.argument("file", metavar="FILE")
@click.option("--input", "input_", metavar="JSON|@FILE", help="the execution input (default {})")
@click.option("--json", "as_json", is_flag=True, help="print only the result, as JSON")
@click.option("--handlers", metavar="MODULE", help="a .py file or module with HANDLERS")
@click.option("--cells", metavar="MODULE[,MODULE]", help=CELLS_HELP)
def run_command(
    file: str, input_: str | None, as_json: bool, handlers: str | None, cells: str | None
) -> int:
    """Run a workflow in memory on a virtual clock.

    FILE is the state machine definition (JSON).
    """
    definition = load_json(file)
    payload = None if input_ is None else read_input(input_)
    loaded = load_handlers(handlers) if handlers else None
    modules = load_cells(cells) if cells else None
    progress = None if as_json else Progress(definition, sys.stdout)
    try:
        result = execute(definition, payload, handlers=loaded, on_event=progress, cells=modules)
    except DefinitionError as exc:
        lines = "".join(f"\n  {d}" for d in exc.diagnostics if d.severity == "ERROR")
        raise UsageError(f"{file} is not a valid state machine:{lines}") from None
    if progress is None:
        click.echo(json.dumps(result.to_dict(), default=str, ensure_ascii=False))
    else:
        _summary(result, progress)
    return 0 if result.succeeded else 1


def _summary(result: ExecutionResult, progress: Progress) -> None:
    took = f"{progress.entered} states entered, {clock(progress.elapsed)[1:]} of virtual time"
    status = click.style(result.status, **status_style(result.status))
    click.echo(f"\n{status if progress.color else result.status}  ({took})")
    if result.succeeded:
        click.echo(json.dumps(result.result, indent=2, ensure_ascii=False))
        return
    if result.status == "RUNNING":
        click.echo("waiting for a callback or activity task that no handler answers")
        return
    click.echo(f"error: {result.error}")
    if result.cause:
        click.echo(f"cause: {result.cause}")


@click.command("validate")
@click.argument("file", metavar="FILE")
def validate_command(file: str) -> int:
    """List the problems of a definition.

    FILE is the state machine definition (JSON); the exit status is 1 if it has errors.
    """
    diagnostics = validate_definition(load_json(file))
    for diagnostic in diagnostics:
        click.echo(("" if diagnostic.severity == "ERROR" else "warning: ") + str(diagnostic))
    errors = sum(d.severity == "ERROR" for d in diagnostics)
    if not errors:
        click.echo("OK")
    return 1 if errors else 0
