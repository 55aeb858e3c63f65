"""The ``stepflow`` command: run, validate, serve locally, and work with workflows.

Built on click: each command is a ``click.Command`` in its own module,
registered in :data:`cli`. :func:`main` runs the group and returns the exit
status: 0 success, 1 a failed execution or an invalid definition, 2 bad input
(reported in one line), 130 interrupted.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from stepflow.cli.cells import cells_group
from stepflow.cli.inputs import UsageError
from stepflow.cli.local import local_command
from stepflow.cli.progress import Progress
from stepflow.cli.run import run_command, validate_command
from stepflow.cli.worker import worker_command
from stepflow.graph.command import graph_command
from stepflow.live.command import watch_command
from stepflow.proxy.command import console_command, proxy_command

__all__ = ["Progress", "UsageError", "cli", "main"]


@click.group(
    "stepflow",
    context_settings={"help_option_names": ["-h", "--help"]},
    invoke_without_command=True,
)
@click.version_option(package_name="stepflow", prog_name="stepflow")
@click.pass_context
def cli(context: click.Context) -> None:
    """Run and validate Amazon States Language workflows."""
    if context.invoked_subcommand is None:  # plain ``stepflow``: the help, not an error
        click.echo(context.get_help())


for _command in (
    run_command,
    validate_command,
    local_command,
    worker_command,
    cells_group,
    graph_command,
    proxy_command,
    console_command,
    watch_command,
):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``stepflow`` on ``argv`` (default: the process's arguments); the exit status."""
    if isinstance(sys.stdout, io.TextIOWrapper):  # never die on a non-UTF-8 terminal
        sys.stdout.reconfigure(errors="replace")
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        result: Any = cli.main(args=args, prog_name="stepflow", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        return 130
    except BrokenPipeError:  # the reader left early (``| head``): no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130
    except RecursionError:
        click.echo("stepflow: error: the definition or input is nested too deeply", err=True)
        return 2
    return result if isinstance(result, int) else 0
