"""Transitions per second: StepFlow's in-memory engine against moto's Step Functions interpreter.

Both run the same counter loop: Choice ``Check`` ($.i < N → Increment, else Done) →
Pass ``Increment`` (Parameters with States.MathAdd and States.Format) → Pass
``Mark`` (Result under $.mark) → back to Check; Succeed ``Done``. That is
3 N + 2 states entered (the transitions counted here).

* StepFlow: ``stepflow.testing.execute`` on the virtual clock, full history
  recorded: the runtime's Stepper commits to the in-memory log, which copies
  what goes in and out as a store would; the whole call is timed, best of ``--repeat``.
* moto (>= 5.1): by default moto only fakes executions; its real ASL interpreter
  (a port of LocalStack's) runs when mocked with
  ``mock_aws(config={"stepfunctions": {"execute_state_machine": True}})``. It
  runs each execution on a worker thread: timed from StartExecution until
  DescribeExecution (polled every ``POLL_SECONDS``) reports it finished, best of
  ``--repeat``; transitions are the ``…StateEntered`` events of its history.
  (``SF_EXECUTION_HISTORY_TYPE`` only picks the canned history of the fake.)

Run: ``.venv/bin/python bench/throughput.py [--iterations 2000] [--moto-iterations 1000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

POLL_SECONDS = 0.05  # DescribeExecution polling: coarse, so the poller barely takes the GIL
ROLE_ARN = "arn:aws:iam::123456789012:role/stepflow-bench"


def counter_loop(iterations: int) -> dict[str, Any]:
    """The benchmark definition: ``iterations`` rounds of Check → Increment → Mark."""
    return {
        "Comment": f"Counter loop: {iterations} iterations, {3 * iterations + 2} transitions",
        "StartAt": "Check",
        "States": {
            "Check": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.i", "NumericLessThan": iterations, "Next": "Increment"}
                ],
                "Default": "Done",
            },
            "Increment": {
                "Type": "Pass",
                "Parameters": {
                    "i.$": "States.MathAdd($.i, 1)",
                    "label.$": "States.Format('iteration {}', $.i)",
                },
                "Next": "Mark",
            },
            "Mark": {
                "Type": "Pass",
                "Result": {"marked": True},
                "ResultPath": "$.mark",
                "Next": "Check",
            },
            "Done": {"Type": "Succeed"},
        },
    }


@dataclass
class Measure:
    """One engine's best run."""

    engine: str
    iterations: int
    transitions: int = 0
    seconds: float = 0.0
    history_events: int = 0
    error: str | None = None

    @property
    def per_second(self) -> float:
        """Transitions per second (0 when the run failed)."""
        return self.transitions / self.seconds if self.seconds and not self.error else 0.0


def _check(status: str, output: Any, iterations: int) -> None:
    if status != "SUCCEEDED" or not isinstance(output, dict) or output.get("i") != iterations:
        raise AssertionError(f"unexpected outcome: {status} {output!r}")


def run_stepflow(iterations: int, repeat: int) -> Measure:
    """Time ``stepflow.testing.execute`` on the counter loop; keep the fastest run."""
    best = Measure("stepflow", iterations)
    try:
        from stepflow.testing import execute

        definition = counter_loop(iterations)
        for _ in range(repeat):
            started = time.perf_counter()
            result = execute(definition, {"i": 0})
            seconds = time.perf_counter() - started
            _check(result.status, result.result, iterations)
            if not best.seconds or seconds < best.seconds:
                best.seconds, best.history_events = seconds, len(result.history)
                best.transitions = len(result.states_entered())
    except Exception as exc:  # report it next to the other engine's figures
        best.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return best


def run_moto(iterations: int, repeat: int) -> Measure:
    """Time moto's Step Functions interpreter (in process) on the counter loop."""
    best = Measure("moto", iterations)
    try:
        import boto3
        from moto import mock_aws

        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            client = boto3.client("stepfunctions", region_name="us-east-1")
            machine = client.create_state_machine(
                name="counter-loop",
                definition=json.dumps(counter_loop(iterations)),
                roleArn=ROLE_ARN,
            )["stateMachineArn"]
            for run in range(repeat):
                started = time.perf_counter()
                arn = client.start_execution(
                    stateMachineArn=machine, name=f"run-{run}", input=json.dumps({"i": 0})
                )["executionArn"]
                while (described := client.describe_execution(executionArn=arn))[
                    "status"
                ] == "RUNNING":
                    time.sleep(POLL_SECONDS)
                seconds = time.perf_counter() - started
                _check(described["status"], json.loads(described.get("output", "null")), iterations)
                pages = client.get_paginator("get_execution_history").paginate(executionArn=arn)
                events = [event for page in pages for event in page["events"]]
                if not best.seconds or seconds < best.seconds:
                    best.seconds, best.history_events = seconds, len(events)
                    best.transitions = sum(e["type"].endswith("StateEntered") for e in events)
    except Exception as exc:
        best.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return best


def machine_info() -> dict[str, Any]:
    """Where the figures were measured."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = [ln for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
        cpu = models[0].split(":", 1)[1].strip() if models else cpu
    versions: dict[str, str | None] = {}
    for package in ("moto", "boto3"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        **versions,
    }


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run."""
    python = os.path.relpath(sys.executable)
    script = os.path.relpath(__file__)
    argv = [python if not python.startswith("..") else sys.executable, script]
    argv += ["--iterations", str(args.iterations), "--repeat", str(args.repeat)]
    argv += ["--no-moto"] if args.no_moto else ["--moto-iterations", str(args.moto_iterations)]
    return shlex.join(argv + (["--json"] if args.json else []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000, help="StepFlow loop rounds")
    parser.add_argument(
        "--moto-iterations",
        type=int,
        default=1000,
        help="moto loop rounds (moto is slower; transitions/s is what is compared)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per engine; the best counts")
    parser.add_argument("--no-moto", action="store_true", help="measure StepFlow only")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    measures = [run_stepflow(args.iterations, args.repeat)]
    if not args.no_moto:
        measures.append(run_moto(args.moto_iterations, args.repeat))
    rates = [m.per_second for m in measures]
    ratio = rates[0] / rates[1] if len(rates) == 2 and all(rates) else None
    report = {
        "benchmark": "counter loop (Choice -> Pass -> Pass), transitions = states entered",
        "machine": machine_info(),
        "results": [{**asdict(m), "transitions_per_second": m.per_second} for m in measures],
        "ratio_stepflow_over_moto": ratio,
        "command": command_line(args),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 1 if any(m.error for m in measures) else 0


def print_report(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(f"benchmark: {report['benchmark']}")
    print(f"machine:   {m['platform']}, {m['cpu']}, {m['cpu_count']} CPU(s)")
    print(f"python:    {m['python']} (moto {m['moto']}, boto3 {m['boto3']})")
    head = ("engine", "iterations", "transitions", "seconds", "transitions/s", "history events")
    print("\n{:<9} {:>10} {:>12} {:>9} {:>14} {:>15}".format(*head))
    for r in report["results"]:
        if r["error"]:
            print(f"{r['engine']:<9} {r['iterations']:>10}  failed: {r['error']}")
            continue
        print(
            f"{r['engine']:<9} {r['iterations']:>10} {r['transitions']:>12} "
            f"{r['seconds']:>9.3f} {r['transitions_per_second']:>14,.0f} {r['history_events']:>15}"
        )
    ratio = report["ratio_stepflow_over_moto"]
    if ratio is not None:
        print(f"\nStepFlow / moto: {ratio:.1f}x the transitions per second")
    print(f"\nreproduce: {report['command']}")


if __name__ == "__main__":
    sys.exit(main())
