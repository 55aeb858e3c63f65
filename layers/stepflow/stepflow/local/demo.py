"""``stepflow local --demo``: register the examples, run one through the API, show it live."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, TextIO

from stepflow.definitions import is_yaml, load_definition
from stepflow.local.stack import LocalStack
from stepflow.local.verbosity import QUIET, set_verbosity

ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"
PATTERNS = ("*.asl.json", "*.asl.yaml", "*.asl.yml")
TERMINAL = {"ExecutionSucceeded", "ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"}


def quiet() -> None:
    """Keep the demo's output to its progress lines: no request or EMF logging."""
    set_verbosity(QUIET)


def machine_name(path: Path) -> str:
    """``examples/order.asl.json`` is registered as ``order``."""
    return path.name.split(".")[0]


def register(sfn: Any, folder: Path) -> dict[str, str]:
    """Create (or update) a state machine for each ``*.asl.json`` or ``.asl.yaml`` in ``folder``."""
    arns: dict[str, str] = {}
    found = [path for pattern in PATTERNS for path in folder.glob(pattern)]
    for path in sorted(found):
        name, definition = machine_name(path), _text(path)
        try:
            arn = sfn.create_state_machine(name=name, definition=definition, roleArn=ROLE)[
                "stateMachineArn"
            ]
        except sfn.exceptions.StateMachineAlreadyExists as exc:
            arn = str(exc.response["Error"]["Message"]).rsplit("'", 2)[-2]
            sfn.update_state_machine(stateMachineArn=arn, definition=definition)
        arns[name] = str(arn)
    return arns


def _text(path: Path) -> str:
    """The definition as sent: a JSON file as it is, a YAML one converted."""
    if is_yaml(path):
        return json.dumps(load_definition(path), ensure_ascii=False)
    return path.read_text(encoding="utf-8")


def run_demo(
    stack: LocalStack, file: str, payload: Any, out: TextIO, timeout: float = 120.0
) -> int:
    """Run ``file`` on the stack, printing its progress; 0 if it succeeded."""
    from stepflow.cli import Progress  # the same progress lines as `stepflow run`

    sfn = stack.stepfunctions()
    path = Path(file)
    arns = register(sfn, path.parent)
    print(f"registered {', '.join(sorted(arns))} from {path.parent}/", file=out)
    started = time.monotonic()
    execution = sfn.start_execution(
        stateMachineArn=arns[machine_name(path)], input=json.dumps(payload)
    )["executionArn"]
    print(f"started {execution}\n", file=out, flush=True)
    progress = Progress(load_definition(path), out)
    seen = 0
    done = False
    while not done and time.monotonic() - started < timeout:
        pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution)
        events = [event for page in pages for event in page["events"]]
        for event in events[seen:]:
            progress(event)
            done = done or event["type"] in TERMINAL
        seen = len(events)
        if not done:
            time.sleep(0.1)
    described = sfn.describe_execution(executionArn=execution)
    status = described["status"]
    took = time.monotonic() - started
    print(f"\n{status}  ({progress.entered} states entered in {took:.1f} s)", file=out)
    if status == "SUCCEEDED":
        print(json.dumps(json.loads(described["output"]), indent=2, ensure_ascii=False), file=out)
        return 0
    if status == "RUNNING":
        print(f"still running after {timeout:.0f} s", file=out)
    else:
        print(f"error: {described.get('error')}\ncause: {described.get('cause')}", file=out)
    return 1
