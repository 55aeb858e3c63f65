"""Executions per second through ``stepflow local``, clients included (issue 18, goal 3).

Starts the local stack in a child process (moto's server, the API behind its
HTTP gateway, the SQS pollers and runners, as ``stepflow local`` runs them),
registers a 3-state flow through boto3, and lets ``--clients`` client threads
in this process each loop: StartExecution, then DescribeExecution every
``--poll`` seconds until the execution is no longer RUNNING. Prints the
executions finished in each 10-second window (a decay as the table fills shows
as falling windows), the overall rate, end-to-end latency percentiles (from
the StartExecution call until a DescribeExecution saw the end) and the CPU
seconds the server and the clients used.

Flows (``--flow``):

* ``pass``: Pass -> Pass -> Succeed. The execution finishes inside
  StartExecution (its first decision runs the three states), so one
  DescribeExecution sees it done.
* ``task``: Task (a Lambda task bound to an in-process handler) -> Pass ->
  Succeed: the queue, a runner and a stepper invocation are on the path.

Goal: >= 40 executions/s with 4 clients on the 2-core machine, sustained for
5 minutes without decay; latency < 50 ms for a flow that finishes inside
StartExecution.

    .venv/bin/python bench/local_rate.py                    # 30 s, 4 clients, pass
    .venv/bin/python bench/local_rate.py --minutes 5        # the goal's run
    .venv/bin/python bench/local_rate.py --clients 1,4,16 --flow task
    .venv/bin/python bench/local_rate.py --no-snapshots     # moto's own table copies
    .venv/bin/python bench/local_rate.py --moto-process     # moto in its own process
    .venv/bin/python bench/local_rate.py --stepflow /tmp/base/layers/stepflow  # another checkout

Without ``--moto-process`` the stack runs moto in a thread (``LocalStack()``'s
default); ``stepflow local`` runs it in a process of its own. ``--profile PREFIX``
records the stack's and moto's GIL holders with py-spy (on the PATH).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WINDOW = 10.0
ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"
LAMBDA = "arn:aws:lambda:us-east-1:000000000000:function:noop"
FLOWS: dict[str, dict[str, Any]] = {
    "pass": {
        "StartAt": "First",
        "States": {
            "First": {"Type": "Pass", "Result": {"n": 1}, "ResultPath": "$.first", "Next": "Then"},
            "Then": {"Type": "Pass", "Parameters": {"n.$": "$.first.n"}, "Next": "Done"},
            "Done": {"Type": "Succeed"},
        },
    },
    "task": {
        "StartAt": "Work",
        "States": {
            "Work": {"Type": "Task", "Resource": LAMBDA, "Next": "Then"},
            "Then": {"Type": "Pass", "Parameters": {"n.$": "$.n"}, "Next": "Done"},
            "Done": {"Type": "Succeed"},
        },
    },
}


def noop(payload: Any) -> Any:
    """The task flow's Lambda handler: returns its input."""
    return payload


def serve(args: argparse.Namespace) -> int:
    """Child process: run the local stack until stdin closes; print its URL first."""
    from stepflow.local import LocalStack, moto_patches

    options: dict[str, Any] = {"moto_process": True} if args.moto_process else {}  # older: none
    if args.repair_every:
        options["repair_every"] = args.repair_every
    stack = LocalStack("127.0.0.1", 0, None, {"noop": noop}, pollers=args.pollers, **options)
    with stack:
        if args.no_snapshots:
            moto_patches.uninstall_item_snapshots()
        import stepflow

        ready = {"url": stack.url, "pid": os.getpid(), "stepflow": stepflow.__file__}
        print(json.dumps(ready), flush=True)
        sys.stdin.read()  # the parent closes it to stop us
    return 0


@dataclass
class Run:
    """What the clients saw: (start, end) of each finished execution, and the failures."""

    started: float
    done: list[tuple[float, float]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def client_loop(url: str, machine: str, run: Run, until: float, poll: float) -> None:
    """One client: start an execution, wait for its end, again, until ``until``."""
    import boto3

    sfn = boto3.client(
        "stepfunctions",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    while time.monotonic() < until:
        began = time.monotonic()
        try:
            arn = sfn.start_execution(
                stateMachineArn=machine, name=uuid.uuid4().hex, input='{"n": 1}'
            )["executionArn"]
            while (status := sfn.describe_execution(executionArn=arn)["status"]) == "RUNNING":
                time.sleep(poll)
        except Exception as exc:  # counted and reported, the client goes on
            with run.lock:
                run.failures.append(f"{type(exc).__name__}: {exc}"[:200])
            continue
        ended = time.monotonic()
        with run.lock:
            if status == "SUCCEEDED":
                run.done.append((began, ended))
            else:
                run.failures.append(status)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # ended
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(child) for child in descendants(pid, deep=False))


def descendants(pid: int, *, deep: bool = True) -> list[int]:
    """The live child processes of ``pid`` (and theirs, when ``deep``)."""
    children: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for task in tasks:
        try:
            listed = Path(f"/proc/{pid}/task/{task}/children").read_text()
            children += [int(c) for c in listed.split()]
        except OSError:
            continue
    return children + [d for c in children for d in descendants(c)] if deep else children


def measure(
    url: str,
    server_pid: int,
    flow: str,
    clients: int,
    seconds: float,
    poll: float,
    profile: str | None = None,
) -> dict[str, Any]:
    """Register ``flow`` and run ``clients`` for ``seconds``; the figures.

    ``profile``: a file where py-spy writes the server's sampled stacks (collapsed).
    """
    import boto3

    sfn = boto3.client(
        "stepfunctions",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    machine = sfn.create_state_machine(
        name=f"rate-{flow}-{uuid.uuid4().hex[:8]}", definition=json.dumps(FLOWS[flow]), roleArn=ROLE
    )["stateMachineArn"]
    server_cpu, own_cpu = cpu_seconds(server_pid), time.process_time()
    run = Run(started=time.monotonic())
    until = run.started + seconds
    threads = [
        threading.Thread(target=client_loop, args=(url, machine, run, until, poll))
        for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    spies = []
    if profile:  # the stack's process and moto's (its child), each in its own file
        for n, pid in enumerate([server_pid, *descendants(server_pid)]):
            argv = ["py-spy", "record", "--pid", str(pid), "--duration", str(int(seconds) - 1)]
            argv += ["--rate", "50", "--gil", "--nonblocking", "--format", "raw"]
            spies.append(
                subprocess.Popen(
                    [*argv, "--output", f"{profile}.{n}.txt"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
    for thread in threads:
        thread.join()
    for spy in spies:
        spy.wait()
    elapsed = time.monotonic() - run.started
    windows = [0] * max(1, int(seconds // WINDOW))
    for _, ended in run.done:
        index = int((ended - run.started) // WINDOW)
        if index < len(windows):
            windows[index] += 1
    latencies = sorted((end - start) * 1000 for start, end in run.done)
    return {
        "flow": flow,
        "clients": clients,
        "seconds": round(elapsed, 1),
        "executions": len(run.done),
        "per_second": round(len(run.done) / elapsed, 1),
        "windows_per_second": [round(n / WINDOW, 1) for n in windows],
        "latency_ms": _percentiles(latencies),
        "server_cores": round((cpu_seconds(server_pid) - server_cpu) / elapsed, 2),
        "client_cores": round((time.process_time() - own_cpu) / elapsed, 2),
        "failures": len(run.failures),
        "first_failures": run.failures[:3],
    }


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}

    def pick(q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))]

    return {
        "p50": round(pick(0.5), 1),
        "p95": round(pick(0.95), 1),
        "max": round(values[-1], 1),
        "mean": round(statistics.fmean(values), 1),
    }


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str, int]:
    """The stack in a child process; its URL and pid once it serves."""
    argv = [sys.executable, __file__, "--serve", "--pollers", str(args.pollers)]
    argv += ["--no-snapshots"] if args.no_snapshots else []
    argv += ["--moto-process"] if args.moto_process else []
    argv += ["--repair-every", str(args.repair_every)] if args.repair_every else []
    env = dict(os.environ)
    if args.stepflow:  # another checkout's stepflow package first on the path
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.stepflow, env.get("PYTHONPATH")]))
    child = subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=None if args.verbose else subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout is not None
    for line in child.stdout:  # the stack's logs may come first
        if line.startswith('{"url"'):
            break
    else:
        raise SystemExit("the local stack did not start")
    ready = json.loads(line)
    print(f"serving: stepflow from {os.path.dirname(ready['stepflow'])}", flush=True)
    # Its logs (EMF metrics on stdout) are read and dropped, so the pipe never fills.
    threading.Thread(target=lambda: all(child.stdout or ()), daemon=True).start()
    return child, str(ready["url"]), int(ready["pid"])


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run."""
    argv = [os.path.relpath(sys.executable), os.path.relpath(__file__)]
    argv += ["--clients", args.clients, "--flow", args.flow, "--seconds", str(args.seconds)]
    argv += ["--poll", str(args.poll), "--pollers", str(args.pollers)]
    argv += ["--no-snapshots"] if args.no_snapshots else []
    argv += ["--stepflow", args.stepflow] if args.stepflow else []
    argv += ["--repair-every", str(args.repair_every)] if args.repair_every else []
    return shlex.join(argv + (["--moto-process"] if args.moto_process else []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="4", help="client threads, comma-separated runs")
    parser.add_argument("--flow", default="pass", help="pass, task or pass,task")
    parser.add_argument("--seconds", type=float, default=30.0, help="each run's length")
    parser.add_argument("--minutes", type=float, help="each run's length in minutes")
    parser.add_argument("--poll", type=float, default=0.01, help="DescribeExecution interval")
    parser.add_argument("--pollers", type=int, default=4, help="the stack's stepper pollers")
    parser.add_argument("--no-snapshots", action="store_true", help="moto's own transactions")
    parser.add_argument(
        "--moto-process", action="store_true", help="moto's server in a process of its own"
    )
    parser.add_argument(
        "--stepflow",
        metavar="DIR",
        help="serve from another checkout's layers/stepflow (e.g. the commit before, to compare)",
    )
    parser.add_argument(
        "--repair-every", type=float, help="seconds between outbox repair passes (default 60)"
    )
    parser.add_argument("--fresh", action="store_true", help="a new stack for every run")
    parser.add_argument("--json", action="store_true", help="print one JSON object per run")
    parser.add_argument("--profile", metavar="PREFIX", help="py-spy the server into PREFIX.*")
    parser.add_argument("--verbose", action="store_true", help="show the stack's stderr")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args)
    if args.no_snapshots and args.moto_process:
        parser.error("--no-snapshots undoes a patch of the in-process moto only")
    if args.minutes:
        args.seconds = args.minutes * 60
    print(f"reproduce: {command_line(args)}")
    print(f"machine: {os.cpu_count()} CPU(s), load average {os.getloadavg()}")
    server = None
    try:
        for flow in args.flow.split(","):
            for clients in (int(n) for n in args.clients.split(",")):
                if server is None or args.fresh:
                    if server is not None:
                        stop_server(server)
                    server, url, pid = start_server(args)
                profile = f"{args.profile}.{flow}.{clients}" if args.profile else None
                result = measure(url, pid, flow, clients, args.seconds, args.poll, profile)
                print(json.dumps(result) if args.json else render(result), flush=True)
    finally:
        if server is not None:
            stop_server(server)
    return 0


def render(r: dict[str, Any]) -> str:
    """One run as text."""
    lat = r["latency_ms"]
    return (
        f"{r['flow']:<5} clients {r['clients']:>2}: {r['per_second']:>6.1f} exec/s "
        f"({r['executions']} in {r['seconds']} s, {r['failures']} failed); "
        f"latency ms p50 {lat.get('p50')} p95 {lat.get('p95')} max {lat.get('max')}; "
        f"cores: server {r['server_cores']}, clients {r['client_cores']}\n"
        f"      per 10 s: {' '.join(f'{w:.1f}' for w in r['windows_per_second'])}"
        + "".join(f"\n      failed: {failure}" for failure in r["first_failures"])
    )


def stop_server(child: subprocess.Popen[str]) -> None:
    """Close the child's stdin (it stops its stack) and wait; kill it if it hangs."""
    assert child.stdin is not None
    child.stdin.close()
    try:
        child.wait(timeout=15)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGKILL)
        child.wait()


if __name__ == "__main__":
    sys.exit(main())
