"""``stepflow local`` as a process stops on SIGTERM and SIGINT with work in flight.

Executions are in the pollers' hands (one handler never returns), an
activity long poll and a StartExecution are in flight in the gateway: the
process still exits 0 within a bound, and its port is closed.
``tools/repeat_signal_tests.sh`` runs these tests many times in a row.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from stepflow.local import free_port

ROOT = Path(__file__).resolve().parents[2]
ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"
FN = "arn:aws:lambda:us-east-1:000000000000:function:"
EXIT_BOUND = 15.0  # stepflow local forces its exit after 10 s; this only catches a hang
WAIT = 60.0


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def spawn(output: Path, *args: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "stepflow", "local", *args]
    command += ["--handlers", str(ROOT / "tests" / "e2e" / "signal_handlers.py")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "STEPFLOW_TEST_STARTS": str(output) + ".starts"}
    with open(output, "w") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def refused(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2.0)
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_local_stack_stops_with_work_in_flight(signum: int, tmp_path: Path) -> None:
    port = free_port()
    output = tmp_path / "output"
    marks = Path(f"{output}.starts")
    process = spawn(output, "--port", str(port))
    try:
        until(lambda: any("StepFlow local stack" in x for x in lines(output)), "the banner")
        sfn = boto3.client(
            "stepfunctions",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        definition = {
            "StartAt": "Sleep",
            "States": {"Sleep": {"Type": "Task", "Resource": FN + "sleep", "End": True}},
        }
        machine = sfn.create_state_machine(
            name="sleepy", definition=json.dumps(definition), roleArn=ROLE
        )["stateMachineArn"]
        for n, seconds in enumerate([3600, 0.5, 0.5, 5]):
            sfn.start_execution(
                stateMachineArn=machine, input=json.dumps({"n": n, "seconds": seconds})
            )
        until(lambda: len(lines(marks)) >= 2, "tasks to start")
        activity = sfn.create_activity(name="idle")["activityArn"]
        polling: list[Any] = []

        def poll() -> None:  # a 25 s long poll, in flight at the signal
            try:
                polling.append(sfn.get_activity_task(activityArn=activity))
            except Exception as exc:  # the stack went away under it
                polling.append(exc)

        threading.Thread(target=poll, daemon=True).start()
        time.sleep(0.2)
        # WHEN the signal comes
        signalled = time.monotonic()
        process.send_signal(signum)
        # THEN the process exits 0 and its port is closed
        assert process.wait(timeout=EXIT_BOUND) == 0, "\n".join(lines(output)[-20:])
        elapsed = time.monotonic() - signalled
        print(f"stepflow local exited {elapsed:.2f} s after the signal")
        assert elapsed < 10.5  # docs/local.md: the exit watchdog's 10 s at the most
        assert refused(port)
        assert any(signal.Signals(signum).name in x for x in lines(output))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_demo_in_flight_stops_on_sigterm(tmp_path: Path) -> None:
    # GIVEN `stepflow local --demo` running a task that never ends on its own
    port = free_port()
    output = tmp_path / "output"
    definition = {
        "StartAt": "Sleep",
        "States": {"Sleep": {"Type": "Task", "Resource": FN + "sleep", "End": True}},
    }
    (tmp_path / "sleepy.asl.json").write_text(json.dumps(definition))
    demo = ["--demo", str(tmp_path / "sleepy.asl.json"), "--input", '{"n": 0, "seconds": 3600}']
    process = spawn(output, "--port", str(port), *demo)
    try:
        until(lambda: len(lines(Path(f"{output}.starts"))) == 1, "the task to start")
        # WHEN SIGTERM comes, THEN the demo is cut short: 128 + 15, and the port is closed
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=EXIT_BOUND) == 128 + signal.SIGTERM
        assert refused(port)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_demo_that_fails_ends_the_command_with_1(tmp_path: Path) -> None:
    # GIVEN `stepflow local --demo` on a definition the API refuses (its demo thread raises)
    (tmp_path / "bad.asl.json").write_text(
        json.dumps({"StartAt": "Nope", "States": {"A": {"Type": "Pass", "End": True}}})
    )
    output = tmp_path / "output"
    process = spawn(output, "--port", str(free_port()), "--demo", str(tmp_path / "bad.asl.json"))
    try:
        # THEN the command ends with 1 (it used to wait for a signal forever)
        assert process.wait(timeout=EXIT_BOUND) == 1
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
