"""``stepflow run`` and ``stepflow validate``: a workflow in memory, a definition checked."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from stepflow.asl import DefinitionError, Diagnostic
from stepflow.cli.inputs import UsageError, load_cells, load_definition, load_handlers, read_input
from stepflow.cli.progress import Progress, clock, status_style
from stepflow.integrations.validation import validate_definition
from stepflow.testing import ExecutionResult, execute
from stepflow.testing.mocks import MockConfigError

__all__ = ["CELLS_HELP", "definition_options", "run_command", "validate_command"]

CELLS_HELP = "cells modules (.py files or dotted modules): their stepflow:cell:* tasks run inline"

F = TypeVar("F", bound=Callable[..., Any])


def definition_options(command: F) -> F:
    """FILE (JSON or YAML) with ``--sub``, ``--template`` and ``--state-machine``."""
    for option in reversed(
        (
            click.argument("file", metavar="[FILE]", required=False),
            click.option(
                "--sub",
                "subs",
                metavar="KEY=VALUE",
                multiple=True,
                help="a DefinitionSubstitutions value for ${KEY} (repeatable)",
            ),
            click.option(
                "--template",
                metavar="TEMPLATE",
                help="a SAM/CloudFormation template: its DefinitionSubstitutions "
                "(and the definition, without FILE)",
            ),
            click.option(
                "--state-machine",
                "machine",
                metavar="LOGICAL_ID",
                help="the template's state machine resource (when it has several)",
            ),
        )
    ):
        command = option(command)
    return command


def _definition(
    file: str | None, subs: tuple[str, ...], template: str | None, machine: str | None
) -> dict[str, Any]:
    if file is None and template is None:
        raise UsageError("give a definition FILE or a --template")
    if machine is not None and template is None:
        raise UsageError("--state-machine needs a --template")
    return load_definition(file, subs, template=template, machine=machine)


@click.command("run")
@definition_options
@click.option("--input", "input_", metavar="JSON|@FILE", help="the execution input (default {})")
@click.option("--json", "as_json", is_flag=True, help="print only the result, as JSON")
@click.option("--handlers", metavar="MODULE", help="a .py file or module with HANDLERS")
@click.option("--cells", metavar="MODULE[,MODULE]", help=CELLS_HELP)
@click.option(
    "--mock-config",
    metavar="FILE",
    help="Step Functions Local's MockConfigFile.json, with --test-case",
)
@click.option(
    "--test-case",
    metavar="[MACHINE#]CASE",
    help="the mock config's test case to run (MACHINE: its state machine, if it has several)",
)
def run_command(
    file: str | None,
    subs: tuple[str, ...],
    template: str | None,
    machine: str | None,
    input_: str | None,
    as_json: bool,
    handlers: str | None,
    cells: str | None,
    mock_config: str | None,
    test_case: str | None,
) -> int:
    """Run a workflow in memory on a virtual clock.

    FILE is the state machine definition (JSON, or YAML as .asl.yaml).
    """
    definition = _definition(file, subs, template, machine)
    payload = None if input_ is None else read_input(input_)
    loaded = load_handlers(handlers) if handlers else None
    modules = load_cells(cells) if cells else None
    mocks = _mocks(mock_config, test_case)
    progress = None if as_json else Progress(definition, sys.stdout)
    try:
        result = execute(
            definition, payload, handlers=loaded, on_event=progress, cells=modules, **mocks
        )
    except MockConfigError as exc:
        raise UsageError(f"--mock-config {mock_config}: {exc}") from None
    except DefinitionError as exc:
        lines = "".join(f"\n  {d}" for d in exc.diagnostics if d.severity == "ERROR")
        source = file or template
        raise UsageError(f"{source} is not a valid state machine:{lines}") from None
    if progress is None:
        click.echo(json.dumps(result.to_dict(), default=str, ensure_ascii=False))
    else:
        _summary(result, progress)
    return 0 if result.succeeded else 1


def _mocks(config: str | None, test_case: str | None) -> dict[str, Any]:
    """``execute``'s mock arguments for ``--mock-config`` and ``--test-case``."""
    if config is None:
        if test_case is not None:
            raise UsageError("--test-case needs a --mock-config")
        return {}
    if not test_case:
        raise UsageError("--mock-config needs --test-case (one of its TestCases)")
    machine, _, case = test_case.rpartition("#")
    return {"mock_config": config, "test_case": case, "state_machine": machine or None}


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
@definition_options
@click.option("--json", "as_json", is_flag=True, help="print the diagnostics as a JSON array")
def validate_command(
    file: str | None,
    subs: tuple[str, ...],
    template: str | None,
    machine: str | None,
    as_json: bool,
) -> int:
    """List the problems of a definition: AWS's errors and warnings.

    FILE is the state machine definition (JSON, or YAML as .asl.yaml); the exit
    status is 1 if it has errors. Colours only on a terminal without NO_COLOR.
    """
    diagnostics = validate_definition(_definition(file, subs, template, machine))
    errors = sum(d.severity == "ERROR" for d in diagnostics)
    if as_json:
        click.echo(json.dumps([d.to_dict() for d in diagnostics], indent=2, ensure_ascii=False))
        return 1 if errors else 0
    colour = use_colour()
    for diagnostic in diagnostics:
        click.echo(_line(diagnostic), color=colour)
    if not errors:
        click.echo(click.style("OK", fg="green", bold=True), color=colour)
    return 1 if errors else 0


def use_colour(stream: Any = None) -> bool:
    """Whether to colour what goes to ``stream`` (stdout): a terminal, and no ``NO_COLOR``."""
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty()) and not os.environ.get("NO_COLOR")


def _line(diagnostic: Diagnostic) -> str:
    if diagnostic.severity == "ERROR":
        where = click.style(diagnostic.location or "/", fg="red", bold=True)
        return f"{where}: {diagnostic.message}"
    head = click.style("warning:", fg="yellow", bold=True)
    return f"{head} {diagnostic.location or '/'}: {diagnostic.message} ({diagnostic.code})"
