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

The two engines run in turn (StepFlow, moto, StepFlow, moto, ...) in one process,
so that a change of load on a shared machine falls on both. Each run is timed in
wall-clock seconds and in the process's CPU seconds (``time.process_time``: all
threads, so moto's worker thread is counted, and its polling sleeps are not); the
best of each is kept. The last line compares them:
``execute vs moto, counter loop N=..: x-fold``.

``--query-language JSONata`` runs the same loop written in JSONata
(:func:`counter_loop_jsonata`) on both engines.

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
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

POLL_SECONDS = 0.05  # DescribeExecution polling: coarse, so the poller barely takes the GIL
ROLE_ARN = "arn:aws:iam::123456789012:role/stepflow-bench"


def counter_loop_jsonata(iterations: int) -> dict[str, Any]:
    """The same loop in JSONata: a Condition, an Output that adds 1 and formats, one that marks.

    Four of its five expressions per round are plain reads (``$states.input.i < N``,
    ``+ 1``, two paths); the label (``'iteration ' & $string(...)``) is not.
    """
    return {
        "Comment": f"Counter loop (JSONata): {iterations} iterations",
        "QueryLanguage": "JSONata",
        "StartAt": "Check",
        "States": {
            "Check": {
                "Type": "Choice",
                "Choices": [
                    {"Condition": f"{{% $states.input.i < {iterations} %}}", "Next": "Increment"}
                ],
                "Default": "Done",
            },
            "Increment": {
                "Type": "Pass",
                "Output": {
                    "i": "{% $states.input.i + 1 %}",
                    "label": "{% 'iteration ' & $string($states.input.i) %}",
                },
                "Next": "Mark",
            },
            "Mark": {
                "Type": "Pass",
                "Output": {
                    "i": "{% $states.input.i %}",
                    "label": "{% $states.input.label %}",
                    "mark": {"marked": True},
                },
                "Next": "Check",
            },
            "Done": {"Type": "Succeed"},
        },
    }


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


def counter_loop_jsonata_assign(iterations: int) -> dict[str, Any]:
    """The JSONata loop with variables: the Choice rule and the Increment each ``Assign`` one."""
    loop = counter_loop_jsonata(iterations)
    states = loop["States"]
    states["Check"]["Choices"][0]["Assign"] = {"last": "{% $states.input.i %}"}
    states["Increment"]["Assign"] = {"seen": "{% $states.input.i %}"}
    return loop


LOOPS = {
    "JSONPath": counter_loop,
    "JSONata": counter_loop_jsonata,
    "JSONata-Assign": counter_loop_jsonata_assign,
}
"""The counter loop by query language (``--query-language``)."""


@dataclass
class Measure:
    """One engine's runs: the best wall-clock and the best CPU time."""

    engine: str
    iterations: int
    query_language: str = "JSONPath"
    transitions: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    history_events: int = 0
    error: str | None = None
    runs: list[tuple[float, float]] = field(default_factory=list)
    """(wall seconds, CPU seconds) of every run, in order."""

    @property
    def per_second(self) -> float:
        """Transitions per wall-clock second (0 when the run failed)."""
        return self.transitions / self.seconds if self.seconds and not self.error else 0.0

    @property
    def per_cpu_second(self) -> float:
        """Transitions per CPU second of the process (0 when the run failed)."""
        return self.transitions / self.cpu_seconds if self.cpu_seconds and not self.error else 0.0

    def record(self, seconds: float, cpu: float, transitions: int, events: int) -> None:
        """Keep one run: its times, and the best of each kind."""
        self.runs.append((seconds, cpu))
        self.transitions, self.history_events = transitions, events
        self.seconds = min(seconds, self.seconds or seconds)
        self.cpu_seconds = min(cpu, self.cpu_seconds or cpu)


def _check(status: str, output: Any, iterations: int) -> None:
    if status != "SUCCEEDED" or not isinstance(output, dict) or output.get("i") != iterations:
        raise AssertionError(f"unexpected outcome: {status} {output!r}")


def _failed(measure: Measure, exc: Exception) -> None:
    measure.error = f"{type(exc).__name__}: {exc}".splitlines()[0]


def run_stepflow(measure: Measure) -> None:
    """One timed ``stepflow.testing.execute`` of the counter loop (parsing included)."""
    from stepflow.testing import execute

    definition = LOOPS[measure.query_language](measure.iterations)
    started, cpu = time.perf_counter(), time.process_time()
    result = execute(definition, {"i": 0})
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    _check(result.status, result.result, measure.iterations)
    measure.record(seconds, cpu, len(result.states_entered()), len(result.history))


@contextmanager
def moto_machine(iterations: int, query_language: str = "JSONPath") -> Iterator[tuple[Any, str]]:
    """moto's interpreter, mocked in process, with the counter loop created on it."""
    import boto3
    from moto import mock_aws

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        client = boto3.client("stepfunctions", region_name="us-east-1")
        machine = client.create_state_machine(
            name="counter-loop",
            definition=json.dumps(LOOPS[query_language](iterations)),
            roleArn=ROLE_ARN,
        )["stateMachineArn"]
        yield client, machine


def run_moto(measure: Measure, client: Any, machine: str, run: int) -> None:
    """One timed execution on moto's interpreter (it runs on a worker thread of this process)."""
    started, cpu = time.perf_counter(), time.process_time()
    arn = client.start_execution(
        stateMachineArn=machine, name=f"run-{run}", input=json.dumps({"i": 0})
    )["executionArn"]
    while (described := client.describe_execution(executionArn=arn))["status"] == "RUNNING":
        time.sleep(POLL_SECONDS)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    _check(described["status"], json.loads(described.get("output", "null")), measure.iterations)
    pages = client.get_paginator("get_execution_history").paginate(executionArn=arn)
    events = [event for page in pages for event in page["events"]]
    transitions = sum(e["type"].endswith("StateEntered") for e in events)
    measure.record(seconds, cpu, transitions, len(events))


def measure_alternately(args: argparse.Namespace) -> list[Measure]:
    """StepFlow and moto run in turn, ``--repeat`` times each, in one process."""
    language = args.query_language
    stepflow = Measure("stepflow", args.iterations, language)
    moto = None if args.no_moto else Measure("moto", args.moto_iterations, language)
    with ExitStack() as stack:
        target: tuple[Any, str] | None = None
        if moto is not None:
            try:
                target = stack.enter_context(moto_machine(moto.iterations, language))
            except Exception as exc:  # report it next to the other engine's figures
                _failed(moto, exc)
        for run in range(args.repeat):
            if stepflow.error is None:
                try:
                    run_stepflow(stepflow)
                except Exception as exc:
                    _failed(stepflow, exc)
            if moto is not None and target is not None and moto.error is None:
                try:
                    run_moto(moto, *target, run)
                except Exception as exc:
                    _failed(moto, exc)
    return [stepflow] if moto is None else [stepflow, moto]


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
    if args.query_language != "JSONPath":
        argv += ["--query-language", args.query_language]
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
    parser.add_argument(
        "--query-language",
        choices=sorted(LOOPS),
        default="JSONPath",
        help="the loop's query language (JSONata: counter_loop_jsonata)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    measures = measure_alternately(args)
    rates = [m.per_second for m in measures]
    cpu_rates = [m.per_cpu_second for m in measures]
    ratio = rates[0] / rates[1] if len(rates) == 2 and all(rates) else None
    cpu_ratio = cpu_rates[0] / cpu_rates[1] if len(cpu_rates) == 2 and all(cpu_rates) else None
    report = {
        "benchmark": (
            f"counter loop (Choice -> Pass -> Pass, {args.query_language}),"
            " transitions = states entered"
        ),
        "machine": machine_info(),
        "results": [
            {
                **asdict(m),
                "transitions_per_second": m.per_second,
                "transitions_per_cpu_second": m.per_cpu_second,
            }
            for m in measures
        ],
        "ratio_stepflow_over_moto": ratio,
        "cpu_ratio_stepflow_over_moto": cpu_ratio,
        "command": command_line(args),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 1 if any(m.error for m in measures) else 0


def print_report(report: dict[str, Any]) -> None:
    """The report as a table, each run's times, and the comparison line."""
    m = report["machine"]
    print(f"benchmark: {report['benchmark']}")
    print(f"machine:   {m['platform']}, {m['cpu']}, {m['cpu_count']} CPU(s)")
    print(f"python:    {m['python']} (moto {m['moto']}, boto3 {m['boto3']})")
    head = ("engine", "iterations", "transitions", "seconds", "transitions/s", "CPU s", "per CPU s")
    print("\n{:<9} {:>10} {:>12} {:>9} {:>14} {:>9} {:>12}".format(*head))
    results = report["results"]
    for r in results:
        if r["error"]:
            print(f"{r['engine']:<9} {r['iterations']:>10}  failed: {r['error']}")
            continue
        print(
            f"{r['engine']:<9} {r['iterations']:>10} {r['transitions']:>12} "
            f"{r['seconds']:>9.3f} {r['transitions_per_second']:>14,.0f} "
            f"{r['cpu_seconds']:>9.3f} {r['transitions_per_cpu_second']:>12,.0f}"
        )
    for r in results:
        runs = ", ".join(f"{wall:.3f}/{cpu:.3f}" for wall, cpu in r["runs"])
        print(f"{r['engine']} runs (wall/CPU s, in order): {runs}")
    ratio, cpu_ratio = report["ratio_stepflow_over_moto"], report["cpu_ratio_stepflow_over_moto"]
    if ratio is not None and cpu_ratio is not None:
        stepflow, moto = results
        n = f"N={stepflow['iterations']}"
        if moto["iterations"] != stepflow["iterations"]:
            n += f" (moto N={moto['iterations']})"
        print(
            f"\nexecute vs moto, counter loop {n}: {ratio:.1f}-fold "
            f"(transitions per wall-clock second), {cpu_ratio:.1f}-fold (per CPU second)"
        )
    print(f"\nreproduce: {report['command']}")


if __name__ == "__main__":
    sys.exit(main())
