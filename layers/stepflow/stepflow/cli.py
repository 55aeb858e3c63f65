"""The ``stepflow`` command: run a workflow in memory, or validate a definition."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import io
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from stepflow.asl import DefinitionError
from stepflow.cells import CellModules, load_modules
from stepflow.integrations.validation import validate_definition
from stepflow.testing import ExecutionResult, execute

__all__ = ["Progress", "main"]

_TASK_EVENTS = ("LambdaFunction", "Activity", "Task")
_FAILED = ("Failed", "TimedOut")
_EFFECT_EVENTS = ("StepFlowEffect", "StepFlowCompensationEffect")
Trail = tuple[str, ...]  # the Map iterations an event happens in, outermost first


class UsageError(Exception):
    """Input the command cannot use: reported in one line, exit status 2."""


class Progress:
    """An ``on_event`` callback printing one line per notable history event.

    Lines show the virtual time elapsed and are indented by the state's nesting
    in Parallel and Map (state names are unique machine-wide). An event belongs
    to the state and Map iteration of the event its ``previousEventId`` names.
    """

    def __init__(self, definition: Any, out: TextIO) -> None:
        self.out = out
        self.depth: dict[str, int] = {}
        self.branch: dict[str, str] = {}
        self.seen: dict[int, tuple[str | None, str, Trail]] = {}
        self.start: float | None = None
        self.last = 0.0
        self.entered = 0
        self._layout(definition, 0)

    def _layout(self, machine: Any, depth: int) -> None:
        states = machine.get("States") if isinstance(machine, Mapping) else None
        for name, state in states.items() if isinstance(states, Mapping) else ():
            if not isinstance(state, Mapping):
                continue
            self.depth[name] = depth
            branches = state.get("Branches")
            branches = branches if isinstance(branches, list) else []
            for i, branch in enumerate(branches):
                if isinstance(branch, Mapping) and isinstance(branch.get("StartAt"), str):
                    self.branch[branch["StartAt"]] = f"branch {i + 1}/{len(branches)} of {name}"
                self._layout(branch, depth + 1)
            self._layout(state.get("ItemProcessor") or state.get("Iterator"), depth + 1)

    def __call__(self, event: dict[str, Any]) -> None:
        """Record ``event`` and print its line, if it is worth one."""
        kind, event_id = str(event.get("type", "")), int(event.get("id", 0))
        prev = int(event.get("previousEventId") or 0)
        found = next((v for k, v in event.items() if k.endswith("EventDetails")), None)
        details: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        owner, prev_kind, trail = self.seen.get(prev, (None, "", ()))
        name = details.get("name") or owner
        if kind == "MapIterationStarted":
            base = trail[:-1] if prev_kind == kind else trail
            trail = (*base, f"iteration {details.get('index')} of {name}")
        elif kind.startswith("MapIteration"):
            trail = trail[:-1]
        self.seen[event_id] = (name, kind, trail)
        self.last = _seconds(event.get("timestamp"))
        self.start = self.last if self.start is None else self.start
        text = self._describe(kind, details, name, prev_kind, trail)
        if text is not None:
            depth = self.depth.get(name or "", 0) + (not kind.endswith("StateEntered"))
            print(f"{_clock(self.elapsed)}  {'  ' * depth}{text}", file=self.out, flush=True)

    @property
    def elapsed(self) -> float:
        """Virtual seconds between the first and the latest event."""
        return 0.0 if self.start is None else self.last - self.start

    def _describe(
        self, kind: str, details: Mapping[str, Any], name: str | None, prior: str, trail: Trail
    ) -> str | None:
        if kind.endswith("StateEntered"):
            self.entered += 1
            where = ", ".join(filter(None, (self.branch.get(name or ""), *trail[-1:])))
            return f"▶ {name} ({kind[: -len('StateEntered')]})" + (f"  [{where}]" if where else "")
        if kind.startswith(_TASK_EVENTS) and kind.endswith("Scheduled"):
            resource = str(details.get("resource", "?"))
            if kind == "TaskScheduled":
                resource = f"{details.get('resourceType')}:{resource}"
            elif ":function:" in resource:
                resource = "lambda:" + resource.split(":function:")[1]
            retry = prior.startswith(_TASK_EVENTS) and prior.endswith(_FAILED)
            return f"↻ retry {resource}" if retry else f"⚙ call {resource}"
        if kind.startswith(_TASK_EVENTS) and kind.endswith(_FAILED):
            cause = str(details.get("cause") or "")
            cause = cause if len(cause) <= 100 else cause[:97] + "..."
            return f"✗ {details.get('error') or kind}" + (f": {cause}" if cause else "")
        if kind.startswith(_EFFECT_EVENTS):
            return _effect_line(kind, details)
        if kind == "MapStateStarted":
            return f"↳ {details.get('length', '?')} iteration(s)"
        if kind in ("MapIterationFailed", "MapIterationAborted"):
            return f"✗ iteration {details.get('index')} {kind[len('MapIteration') :].lower()}"
        if kind.endswith("StateExited") and prior.endswith(_FAILED):
            return f"↪ {name} caught the error"
        if kind == "WaitStateExited":
            return f"{name} done waiting"
        return None


def _effect_line(kind: str, details: Mapping[str, Any]) -> str:
    """One of a cell's effects (StepFlow's own events): performed, replayed or failed."""
    if kind.endswith("Omitted"):
        return f"… {details.get('omitted', '?')} more effect(s) not recorded one by one"
    what = "undo effect" if kind.startswith("StepFlowCompensation") else "effect"
    text = f"{what} #{details.get('index', '?')} {details.get('effect') or '?'}"
    if kind.endswith("Replayed"):
        return f"↺ {text} (replayed)"
    if kind.endswith("Failed"):
        cause = str(details.get("cause") or "")
        cause = cause if len(cause) <= 80 else cause[:77] + "..."
        return f"✗ {text}: {details.get('error') or 'failed'}" + (f": {cause}" if cause else "")
    return f"✦ {text}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``stepflow`` on ``argv``; 0 success, 1 failed execution or invalid, 2 bad input."""
    args = _parser().parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):  # never die on a non-UTF-8 terminal
        sys.stdout.reconfigure(errors="replace")
    try:
        command: Callable[[argparse.Namespace], int] = args.command
        return command(args)
    except UsageError as exc:
        print(f"stepflow: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader left early (``| head``): no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130
    except RecursionError:
        print("stepflow: error: the definition or input is nested too deeply", file=sys.stderr)
        return 2


CELLS_HELP = "cells modules (.py files or dotted modules): their stepflow:cell:* tasks run inline"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stepflow", description="Run and validate Amazon States Language workflows."
    )
    commands = parser.add_subparsers(dest="name", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run a workflow in memory on a virtual clock")
    run.add_argument("file", metavar="FILE", help="the state machine definition (JSON)")
    run.add_argument("--input", metavar="JSON|@FILE", help="the execution input (default {})")
    run.add_argument("--json", action="store_true", help="print only the result, as JSON")
    run.add_argument("--handlers", metavar="MODULE", help="a .py file or module with HANDLERS")
    run.add_argument("--cells", metavar="MODULE[,MODULE]", help=CELLS_HELP)
    run.set_defaults(command=_run)
    check = commands.add_parser("validate", help="list the problems of a definition")
    check.add_argument("file", metavar="FILE", help="the state machine definition (JSON)")
    check.set_defaults(command=_validate)
    local = commands.add_parser(
        "local", help="run the local stack: the Step Functions API on moto (or --endpoint)"
    )
    local.add_argument("--host", default="127.0.0.1", help="address to serve on")
    local.add_argument("--port", type=int, default=8765, help="port to serve on (0: any)")
    local.add_argument("--endpoint", metavar="URL", help="LocalStack or another AWS endpoint")
    local.add_argument(
        "--dynamodb-endpoint",
        metavar="URL",
        help="DynamoDB's own endpoint, e.g. DynamoDB Local (default: --endpoint)",
    )
    local.add_argument("--handlers", metavar="MODULE", help="Lambda tasks as Python HANDLERS")
    local.add_argument("--cells", metavar="MODULE[,MODULE]", help=CELLS_HELP)
    local.add_argument("--demo", metavar="FILE", help="run FILE through the stack, then exit")
    local.add_argument(
        "--assume-roles",
        action="store_true",
        help="assume each task's role through STS (default: the process's credentials)",
    )
    local.add_argument("--input", metavar="JSON|@FILE", help="the demo's input (default {})")
    local.add_argument(
        "--access-policy",
        metavar="JSON|@FILE",
        help="access rules: [{principals, actions, stateMachines}] (default: none)",
    )
    local.add_argument(
        "--check-roles",
        metavar="iam|JSON|@FILE",
        default="off",
        help="check iam:PassRole: 'iam' (the endpoint's IAM) or {principal: [roles]} "
        "(default: off)",
    )
    local.add_argument(
        "--cells-queue",
        metavar="SELECTOR=QUEUE",
        action="append",
        help="run cells on a task queue served by 'stepflow worker --cells' (repeatable; "
        "SELECTOR: name, name:major, saga:compensate or *; see docs/cells-workers.md)",
    )
    local.add_argument(
        "--hooks",
        metavar="NAME[,NAME]",
        default="",
        help="hooks fed from the table's stream (STEPFLOW_HOOKS; see docs/hooks.md)",
    )
    local.set_defaults(command=_local)
    from stepflow.worker import cli as worker_cli

    worker = commands.add_parser("worker", help="run an activity's tasks with a Python handler")
    worker_cli.add_arguments(worker)
    worker.set_defaults(command=_worker)
    from stepflow.cells import lock_cli

    cells = commands.add_parser("cells", help="contract lock files of cells modules")
    lock_cli.add_arguments(cells)
    cells.set_defaults(command=lock_cli.run)
    return parser


def _worker(args: argparse.Namespace) -> int:
    from stepflow.worker import cli as worker_cli

    try:
        return worker_cli.run(args)
    except worker_cli.WorkerUsageError as exc:
        raise UsageError(str(exc)) from exc


LOCAL_EXIT_SECONDS = 10.0
"""After a stop signal, ``stepflow local`` ends within this many seconds, whatever is stuck."""


def _local(args: argparse.Namespace) -> int:
    from stepflow.local import LocalStack, demo  # boto3 and moto load only for this command
    from stepflow.local.stack import CellsLoadError
    from stepflow.worker.signals import Wakeup, exit_within, leave

    handlers = _load_handlers(args.handlers) if args.handlers else {}
    cells = _cells_setting(args.cells)
    if cells:
        _importable_from_cwd()
    payload = {} if args.input is None else _input(args.input)
    access_policy, check_roles = _access_settings(args)
    if args.demo:
        _load(args.demo)  # a missing or malformed file is a usage error, before anything starts
        demo.quiet()
    # Caught before anything starts, so a signal during start-up is acted on right after it.
    # The main thread only ever blocks in select() on the wakeup pipe (see its module).
    wakeup = Wakeup()
    wakeup.catch()
    try:
        stack = LocalStack(
            args.host,
            args.port,
            args.endpoint,
            handlers,
            assume_roles=args.assume_roles,
            access_policy=access_policy,
            check_roles=check_roles,
            dynamodb_endpoint=args.dynamodb_endpoint,
            cell_queues=",".join(args.cells_queue or ()),
            cells=cells,
            hook_names=args.hooks,
        ).start()
    except ValueError as exc:  # a malformed --cells-queue or --hooks
        wakeup.close()
        raise UsageError(str(exc)) from None
    except OSError as exc:
        wakeup.close()
        raise UsageError(
            f"cannot start the local stack on {args.host}:{args.port}: {exc}"
        ) from None
    except CellsLoadError as exc:
        wakeup.close()
        raise UsageError(str(exc)) from None
    try:
        print(
            f"StepFlow local stack: {stack.url}  (AWS services: {stack.aws_endpoint})", flush=True
        )
        if args.demo:
            status: list[int] = []

            def run_demo() -> None:
                code = 1  # the demo died: its traceback shows, the command ends with 1
                try:
                    code = demo.run_demo(stack, args.demo, payload, sys.stdout)
                finally:
                    status.append(code)
                    wakeup.wake()

            threading.Thread(target=run_demo, name="demo", daemon=True).start()
        else:
            print(
                f"  aws stepfunctions list-state-machines --endpoint-url {stack.url}\n"
                f"  boto3.client('stepfunctions', endpoint_url='{stack.url}')",
                *(f"\n  {line}" for line in stack.worker_commands()),
                "\nCtrl-C stops it.",
                sep="",
                flush=True,
            )
            status = []
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
    code = 128 + received[0] if args.demo else 0
    # Stopped by a signal: skip finalization (threads cut off in a request must not crash
    # it, and freeing moto's tables can take longer than the exit watchdog allows).
    leave(code, always=True)
    raise AssertionError("unreachable: leave(always=True) ends the process")


def _run(args: argparse.Namespace) -> int:
    definition = _load(args.file)
    payload = None if args.input is None else _input(args.input)
    handlers = _load_handlers(args.handlers) if args.handlers else None
    cells = _load_cells(args.cells) if args.cells else None
    progress = None if args.json else Progress(definition, sys.stdout)
    try:
        result = execute(definition, payload, handlers=handlers, on_event=progress, cells=cells)
    except DefinitionError as exc:
        lines = "".join(f"\n  {d}" for d in exc.diagnostics if d.severity == "ERROR")
        raise UsageError(f"{args.file} is not a valid state machine:{lines}") from None
    if progress is None:
        print(json.dumps(result.to_dict(), default=str, ensure_ascii=False))
    else:
        _summary(result, progress)
    return 0 if result.succeeded else 1


def _summary(result: ExecutionResult, progress: Progress) -> None:
    took = f"{progress.entered} states entered, {_clock(progress.elapsed)[1:]} of virtual time"
    print(f"\n{result.status}  ({took})")
    if result.succeeded:
        print(json.dumps(result.result, indent=2, ensure_ascii=False))
        return
    if result.status == "RUNNING":
        print("waiting for a callback or activity task that no handler answers")
        return
    print(f"error: {result.error}")
    if result.cause:
        print(f"cause: {result.cause}")


def _validate(args: argparse.Namespace) -> int:
    diagnostics = validate_definition(_load(args.file))
    for diagnostic in diagnostics:
        print(("" if diagnostic.severity == "ERROR" else "warning: ") + str(diagnostic))
    errors = sum(d.severity == "ERROR" for d in diagnostics)
    if not errors:
        print("OK")
    return 1 if errors else 0


def _load(path: str) -> Any:
    """Parse the JSON file at ``path``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return _parse(text, path)


def _access_settings(args: argparse.Namespace) -> tuple[str, str]:
    """``--access-policy`` and ``--check-roles`` as settings, checked before anything starts."""
    from stepflow.api.access import AccessPolicy
    from stepflow.api.pass_role import checker_from_setting

    policy, roles = _setting(args.access_policy), _setting(args.check_roles)
    try:
        AccessPolicy.from_json(policy)
    except ValueError as exc:
        raise UsageError(f"--access-policy: {exc}") from None
    try:
        checker_from_setting(roles, lambda: None)
    except ValueError as exc:
        raise UsageError(f"--check-roles: {exc}") from None
    return policy, roles


def _setting(value: str | None) -> str:
    """A JSON setting given inline or as ``@FILE`` (checked as JSON), or a plain word."""
    if value is None:
        return ""
    if value.startswith("@"):
        return json.dumps(_load(value[1:]))
    if value.lstrip()[:1] in ("[", "{"):
        return json.dumps(_parse(value, "the setting"))
    return value


def _input(value: str) -> Any:
    return _load(value[1:]) if value.startswith("@") else _parse(value, "--input")


def _parse(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source} is not valid JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:  # e.g. a number too long, nesting too deep
        raise UsageError(f"{source} cannot be read as JSON: {exc}") from None


def _load_handlers(spec: str) -> dict[str, Callable[[Any], Any]]:
    """Import ``spec`` (a file path or a dotted module name) and return its ``HANDLERS``."""
    try:
        if spec.endswith(".py") or os.sep in spec:
            module_spec = importlib.util.spec_from_file_location(Path(spec).stem, spec)
            if module_spec is None or module_spec.loader is None:
                raise ImportError("not a Python file")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_spec.name] = module
            module_spec.loader.exec_module(module)
        else:
            _importable_from_cwd()
            module = importlib.import_module(spec)
    except Exception as exc:  # whatever the module raises, the fault is in the user's input
        raise UsageError(f"cannot import --handlers {spec}: {type(exc).__name__}: {exc}") from None
    handlers = getattr(module, "HANDLERS", None)
    if not isinstance(handlers, Mapping) or not all(callable(f) for f in handlers.values()):
        raise UsageError(f"--handlers {spec} must define HANDLERS = {{resource: callable}}")
    return {str(key): fn for key, fn in handlers.items()}


def _cells_setting(spec: str | None) -> str:
    """``--cells`` as the ``STEPFLOW_CELLS`` setting: comma-separated, blanks dropped."""
    names = [name.strip() for name in (spec or "").split(",") if name.strip()]
    if spec is not None and not names:
        raise UsageError("--cells needs at least one module")
    return ",".join(names)


def _load_cells(spec: str) -> CellModules:
    """Load the cells modules of ``--cells`` (what ``STEPFLOW_CELLS`` names, deployed)."""
    names = _cells_setting(spec).split(",")
    _importable_from_cwd()
    try:
        return load_modules(names)
    except Exception as exc:  # whatever the module raises, the fault is in the user's input
        raise UsageError(f"cannot load --cells {spec}: {type(exc).__name__}: {exc}") from None


def _importable_from_cwd() -> None:
    """Dotted modules given on the command line are found from the working directory."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def _seconds(stamp: Any) -> float:
    """A history timestamp (epoch seconds or a datetime) as epoch seconds."""
    if isinstance(stamp, datetime):
        return stamp.timestamp()
    return float(stamp) if isinstance(stamp, int | float) else 0.0


def _clock(seconds: float) -> str:
    """``seconds`` as ``+H:MM:SS.mmm``."""
    minutes, secs = divmod(max(seconds, 0.0), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"+{hours}:{minutes:02d}:{secs:06.3f}"
