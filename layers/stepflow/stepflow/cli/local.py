"""``stepflow local``: the Step Functions API on an embedded stack (moto) or an endpoint.

Its flags (``--host``, ``--port``, ``--endpoint``, ``--handlers``) and its first
line, which names the API URL and the AWS services URL, are stable: scripts and
CI read them.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import TYPE_CHECKING

import click

from stepflow.cli.inputs import (
    UsageError,
    cells_setting,
    importable_from_cwd,
    load_definition,
    load_handlers,
    read_input,
    setting,
)
from stepflow.cli.run import CELLS_HELP

if TYPE_CHECKING:
    from stepflow.testing.mocks import MockConfig

__all__ = ["LOCAL_EXIT_SECONDS", "local_command"]

LOCAL_EXIT_SECONDS = 10.0
"""After a stop signal, ``stepflow local`` ends within this many seconds, whatever is stuck."""


@click.command("local")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to serve on")
@click.option("--port", type=int, default=8765, show_default=True, help="port (0: any free one)")
@click.option("--endpoint", metavar="URL", help="LocalStack or another AWS endpoint")
@click.option(
    "--dynamodb-endpoint",
    metavar="URL",
    help="DynamoDB's own endpoint, e.g. DynamoDB Local (default: --endpoint)",
)
@click.option("--handlers", metavar="MODULE", help="Lambda tasks as Python HANDLERS")
@click.option("--cells", metavar="MODULE[,MODULE]", help=CELLS_HELP)
@click.option("--demo", metavar="FILE", help="run FILE through the stack, then exit")
@click.option(
    "--assume-roles",
    is_flag=True,
    help="assume each task's role through STS (default: the process's credentials)",
)
@click.option("--input", "input_", metavar="JSON|@FILE", help="the demo's input (default {})")
@click.option(
    "--access-policy",
    metavar="JSON|@FILE",
    help="access rules: [{principals, actions, stateMachines}] (default: none)",
)
@click.option(
    "--check-roles",
    metavar="iam|JSON|@FILE",
    default="off",
    help="check iam:PassRole: 'iam' (the endpoint's IAM) or {principal: [roles]} (default: off)",
)
@click.option(
    "--cells-queue",
    metavar="SELECTOR=QUEUE",
    multiple=True,
    help="run cells on a task queue served by 'stepflow worker --cells' (repeatable; "
    "SELECTOR: name, name:major, saga:compensate or *; see docs/cells-workers.md)",
)
@click.option(
    "--hooks",
    metavar="NAME[,NAME]",
    default="",
    help="hooks fed from the table's stream (STEPFLOW_HOOKS; see docs/hooks.md)",
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="-v: the stack's JSON logs; -vv: also metrics and moto's access log "
    "(default: the banner, warnings and errors)",
)
@click.option(
    "--mock-config",
    metavar="FILE",
    envvar="SFN_MOCK_CONFIG",
    help="Step Functions Local's MockConfigFile.json (default: $SFN_MOCK_CONFIG): start an "
    "execution of '<state machine ARN>#<TestCase>' to run that test case (docs/testing.md)",
)
@click.option(
    "--moto-in-process",
    is_flag=True,
    help="run moto in this process, not in a child process of its own (one core for all)",
)
def local_command(
    host: str,
    port: int,
    endpoint: str | None,
    dynamodb_endpoint: str | None,
    handlers: str | None,
    cells: str | None,
    demo: str | None,
    assume_roles: bool,
    input_: str | None,
    access_policy: str | None,
    check_roles: str,
    cells_queue: tuple[str, ...],
    hooks: str,
    verbose: int,
    mock_config: str | None,
    moto_in_process: bool = False,
) -> int:
    """Serve the Step Functions API on a local stack.

    The stack is embedded (moto) unless --endpoint names LocalStack or another AWS endpoint.
    """
    from stepflow.local import LocalStack  # boto3 and moto load only for this command
    from stepflow.local import demo as demo_run
    from stepflow.local.stack import CellsLoadError
    from stepflow.worker.signals import Wakeup, exit_within, leave

    loaded = load_handlers(handlers) if handlers else {}
    cell_names = cells_setting(cells)
    if cell_names:
        importable_from_cwd()
    payload = {} if input_ is None else read_input(input_)
    policy, roles = _access_settings(access_policy, check_roles)
    mocks = _mock_config(mock_config)
    if demo:
        load_definition(demo)  # a missing or malformed file is a usage error, before anything
        demo_run.quiet()
    # Caught before anything starts, so a signal during start-up is acted on right after it.
    # The main thread only ever blocks in select() on the wakeup pipe (see its module).
    wakeup = Wakeup()
    wakeup.catch()
    try:
        stack = LocalStack(
            host,
            port,
            endpoint,
            loaded,
            assume_roles=assume_roles,
            access_policy=policy,
            check_roles=roles,
            dynamodb_endpoint=dynamodb_endpoint,
            cell_queues=",".join(cells_queue),
            cells=cell_names,
            hook_names=hooks,
            verbosity=verbose,
            mock_config=mocks,
            moto_process=not moto_in_process,
        ).start()
    except ValueError as exc:  # a malformed --cells-queue, --hooks or --mock-config
        wakeup.close()
        raise UsageError(str(exc)) from None
    except OSError as exc:
        wakeup.close()
        raise UsageError(f"cannot start the local stack on {host}:{port}: {exc}") from None
    except CellsLoadError as exc:
        wakeup.close()
        raise UsageError(str(exc)) from None
    try:
        print(
            f"StepFlow local stack: {stack.url}  (AWS services: {stack.aws_endpoint})", flush=True
        )
        status: list[int] = []
        if demo:

            def run_demo() -> None:
                code = 1  # the demo died: its traceback shows, the command ends with 1
                try:
                    code = demo_run.run_demo(stack, demo, payload, sys.stdout)
                finally:
                    status.append(code)
                    wakeup.wake()

            threading.Thread(target=run_demo, name="demo", daemon=True).start()
        else:
            print(*stack.banner_lines(), "Ctrl-C stops it.", sep="\n", flush=True)
        received: list[signal.Signals] = []
        while not received and not status:
            received = wakeup.wait() or []
        if not received:
            return status[0] if status else 1  # the demo ended (or died: its traceback shows)
        exit_within(LOCAL_EXIT_SECONDS)  # a handler stuck in a poller cannot hold the exit
        print(f"{received[0].name}: stopping the local stack", file=sys.stderr, flush=True)
    finally:
        stack.stop()
        wakeup.close()
    code = 128 + received[0] if demo else 0
    # Stopped by a signal: skip finalization (threads cut off in a request must not crash
    # it, and freeing moto's tables can take longer than the exit watchdog allows).
    leave(code, always=True)
    raise AssertionError("unreachable: leave(always=True) ends the process")


def _mock_config(path: str | None) -> MockConfig | None:
    """``--mock-config``, read and checked before anything starts."""
    if path is None:
        return None
    from stepflow.testing.mocks import MockConfig, MockConfigError

    try:
        return MockConfig.load(path)
    except MockConfigError as exc:
        raise UsageError(f"--mock-config {path}: {exc}") from None


def _access_settings(access_policy: str | None, check_roles: str) -> tuple[str, str]:
    """``--access-policy`` and ``--check-roles`` as settings, checked before anything starts."""
    from stepflow.api.access import AccessPolicy
    from stepflow.api.pass_role import checker_from_setting

    policy, roles = setting(access_policy), setting(check_roles)
    try:
        AccessPolicy.from_json(policy)
    except ValueError as exc:
        raise UsageError(f"--access-policy: {exc}") from None
    try:
        checker_from_setting(roles, lambda: None)
    except ValueError as exc:
        raise UsageError(f"--check-roles: {exc}") from None
    return policy, roles
