"""Issue 18's figures to hold, one block per workload, each with the command behind it.

Runs each benchmark in a child process (so none sees another's state) and prints:

- the order workload's $ per million transitions, as the deployed stack runs it
  (bench/order_cost.py: every Lambda task through the tasks queue and the runner)
  and on the inline path (bench/cost.py: tasks run in the stepper);
- a Map of 10,000 items, $ per million transitions, inline (a map run past 40
  items), STANDARD and EXPRESS distributed (bench/map_scale.py, memory log,
  write units from the items the DynamoDB log would write);
- the local stack's executions per second and latency (bench/local_rate.py, moto
  in its own process as ``stepflow local`` runs it);
- ``stepflow.testing.execute`` against moto's interpreter on the counter loop
  (bench/throughput.py).

Counts (write and read units, requests) are deterministic; rates and latencies
depend on the machine and its load, which is printed first. ``--quick`` shortens
the timed runs (a smoke test of the script, not figures to record).

    .venv/bin/python bench/figures.py [--quick] [--skip local,map]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def run(argv: list[str], timeout: float) -> str:
    """``python bench/<argv>`` in a child process; its stdout (raises on failure)."""
    done = subprocess.run(
        [PYTHON, *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def order(quick: bool) -> list[str]:
    """The order workload: deployed path and inline path."""
    deployed = json.loads(run(["bench/order_cost.py", "--json"], 600))
    inline = json.loads(run(["bench/cost.py", "--json"], 600))["order_workflow"]
    per = deployed["transitions"]
    return [
        "order workload (17 transitions, 14 Lambda tasks), $ per million transitions:",
        f"  deployed path (tasks on the runner): ${deployed['dollars_per_million_counted']:.2f}"
        f" counted (${deployed['dollars_per_million_transitions']:.2f} with the measured"
        f" Lambda duration); per execution {deployed['dynamodb_wru']:.0f} WRU,"
        f" {deployed['dynamodb_rru']:.0f} RRU, {deployed['sqs_requests']} SQS requests,"
        f" {sum(deployed['lambda_invocations'].values())} invocations"
        f" ({deployed['dynamodb_wru'] / per:.2f} WRU per transition)",
        f"  WRU by item kind: {deployed['wru_by_kind']}",
        f"  inline path (tasks in the stepper): ${inline['dollars_per_million_transitions']:.2f};"
        f" per execution {inline['dynamodb_wru']:.0f} WRU, {inline['dynamodb_rru']:.0f} RRU,"
        f" {inline['sqs_requests']} SQS requests",
        "  reproduce: .venv/bin/python bench/order_cost.py; .venv/bin/python bench/cost.py",
    ]


_MAP_LINE = re.compile(
    r"^(write units per item|\$ per million transitions|CPU time \(s, no metering\))\s+([0-9.,]+)"
)


def maps(quick: bool) -> list[str]:
    """A Map of 10,000 items (1,000 with --quick), each item a Lambda task and a Pass."""
    items = "1000" if quick else "10000"
    argv = ["bench/map_scale.py", "--log", "memory", "--items", items]
    argv += ["--map", "inline,standard,express", "--no-tracemalloc"]
    text = run(argv, 3600)
    lines = [f"Map of {int(items):,} items (a Lambda task and a Pass each), memory log:"]
    for block in text.split("== Map ")[1:]:
        kind = block.split(",", 1)[0]
        found: dict[str, str] = {}
        for match in map(_MAP_LINE.match, block.splitlines()):
            if match is not None:
                found[match.group(1)] = match.group(2)
        lines.append(
            f"  {kind:<8} ${found.get('$ per million transitions', '?')} per million transitions,"
            f" {found.get('write units per item', '?')} WRU per item,"
            f" {found.get('CPU time (s, no metering)', '?')} s of CPU"
        )
    lines.append(f"  reproduce: .venv/bin/python {shlex.join(argv)}")
    return lines


def local(quick: bool) -> list[str]:
    """The local stack: a 3-state flow (1 and 4 clients) and a task flow (4 clients)."""
    seconds = "10" if quick else "30"
    lines = ["local stack (bench/local_rate.py, moto in its own process):"]
    for flow, clients in (("pass", "1,4"), ("task", "4")):
        argv = ["bench/local_rate.py", "--seconds", seconds, "--clients", clients]
        argv += ["--flow", flow, "--moto-process", "--json"]
        for line in run(argv, 900).splitlines():
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            latency = r["latency_ms"]
            lines.append(
                f"  {flow} flow, {r['clients']} client(s): {r['per_second']:.1f} executions/s,"
                f" latency p50 {latency.get('p50')} ms, p95 {latency.get('p95')} ms,"
                f" {r['failures']} failed"
            )
        lines.append(f"  reproduce: .venv/bin/python {shlex.join(argv[:-1])}")
    lines.append(
        "  5 minutes: .venv/bin/python bench/local_rate.py --minutes 5 --clients 4 "
        "--flow pass --moto-process"
    )
    return lines


def engine(quick: bool) -> list[str]:
    """``execute()`` against moto's interpreter, side by side."""
    argv = ["bench/throughput.py", "--iterations", "1000", "--moto-iterations"]
    argv += ["300" if quick else "1000", "--repeat", "1" if quick else "3", "--json"]
    report = json.loads(run(argv, 1800))
    stepflow, moto = report["results"][0], report["results"][1]
    return [
        "in-memory engine vs moto, counter loop:",
        f"  execute(): {stepflow['transitions_per_cpu_second']:,.0f} transitions per CPU second"
        f" ({1e6 / stepflow['transitions_per_cpu_second']:.2f} us each);"
        f" moto: {moto['transitions_per_cpu_second']:,.0f}",
        f"  {report['ratio_stepflow_over_moto']:.1f}-fold per wall-clock second,"
        f" {report['cpu_ratio_stepflow_over_moto']:.1f}-fold per CPU second",
        f"  reproduce: .venv/bin/python {shlex.join(argv[:-1])}",
    ]


WORKLOADS: dict[str, Callable[[bool], list[str]]] = {
    "order": order,
    "map": maps,
    "local": local,
    "engine": engine,
}


def main(argv: list[str] | None = None) -> int:
    """Run the workloads and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="short timed runs (smoke test)")
    parser.add_argument("--skip", default="", help=f"comma-separated of {', '.join(WORKLOADS)}")
    args = parser.parse_args(argv)
    skipped = {s for s in args.skip.split(",") if s}
    unknown = skipped - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {sorted(unknown)}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPU(s), {platform.python_version()},"
        f" load average {tuple(round(x, 2) for x in os.getloadavg())}"
    )
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    for name, workload in WORKLOADS.items():
        if name in skipped:
            continue
        began = time.monotonic()
        print()
        print("\n".join(workload(args.quick)), flush=True)
        print(f"  ({time.monotonic() - began:.0f} s)")
    print(f"\nreproduce all: .venv/bin/python bench/figures.py{' --quick' if args.quick else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
