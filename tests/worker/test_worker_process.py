"""``stepflow worker`` as a real process over the Step Functions protocol: SIGTERM drains."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from stepflow.cli import main

from tests.worker.harness import Harness, activity, task_machine
from tests.worker.sfn_server import SfnServer

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    **os.environ,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def started(h: Harness, arns: list[str]) -> int:
    return sum("ActivityStarted" in h.types(arn) for arn in arns)


def test_sigterm_stops_polling_and_drains_the_tasks_in_hand(tmp_path: Path) -> None:
    h = Harness(task_machine(activity("jobs")))
    h.service.create_activity({"name": "jobs"})
    arns = [h.start({"n": i, "seconds": 2.0}) for i in range(3)]
    with SfnServer(h.service) as server:
        command = [
            sys.executable,
            "-m",
            "stepflow",
            "worker",
            "--activity",
            "jobs",
            "tests.worker.handlers:recorded",
            "--endpoint-url",
            server.url,
            "--concurrency",
            "2",
            "--heartbeat",
            "0.5",
            "--grace",
            "30",
        ]
        env = {**ENV, "STEPFLOW_TEST_STARTS": str(tmp_path / "starts")}
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            # Handlers started, not just tasks handed out: a task a poll brings back
            # after the signal is given back, never run.
            deadline = time.monotonic() + 60
            while handler_starts(tmp_path) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert handler_starts(tmp_path) == 2
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=60)
        finally:
            process.kill()
    assert process.returncode == 0, err
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    messages = [entry["message"] for entry in logs]
    assert "worker stopping" in messages
    stopped = next(entry for entry in logs if entry["message"] == "worker stopped")
    assert stopped["released"] == 0
    assert stopped["succeeded"] == started(h, arns) >= 2
    # Nothing lost: every task the worker took is finished, the rest wait in the queue.
    for arn in arns:
        if h.status(arn) == "RUNNING":
            assert "ActivityStarted" not in h.types(arn)
            task = h.poll("jobs", "next")
            h.service.send_task_success({"taskToken": task["taskToken"], "output": "{}"})
        assert h.status(arn) == "SUCCEEDED"
        assert h.types(arn).count("ActivitySucceeded") == 1


def handler_starts(tmp_path: Path) -> int:
    path = tmp_path / "starts"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_the_cli_reports_a_bad_handler_or_activity_in_one_line(
    capsys: Any, monkeypatch: Any
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, ENV[name])
    package_logger = logging.getLogger("stepflow")  # the CLI sets it up: undo that afterwards
    for attribute in ("handlers", "propagate", "level"):
        monkeypatch.setattr(package_logger, attribute, getattr(package_logger, attribute))
    h = Harness(task_machine(activity("jobs")))
    h.service.create_activity({"name": "jobs"})
    with SfnServer(h.service) as server:
        base = ["worker", "--activity", "jobs", "--endpoint-url", server.url]
        assert main([*base, "no_colon"]) == 2
        assert "is not module:function" in capsys.readouterr().err
        assert main([*base, "tests.worker.nothing_here:x"]) == 2
        assert "cannot import" in capsys.readouterr().err
        assert main([*base, "tests.worker.handlers:missing"]) == 2
        assert "has no 'missing'" in capsys.readouterr().err
        assert main([*base, "tests.worker.handlers:three"]) == 2
        assert "handler(input) or handler(input, context)" in capsys.readouterr().err
        missing = ["worker", "--activity", "ghost", "--endpoint-url", server.url]
        assert main([*missing, "tests.worker.handlers:slow"]) == 2
        assert "no activity named 'ghost'" in capsys.readouterr().err
    closed = ["worker", "--activity", "jobs", "--endpoint-url", server.url]
    assert main([*closed, "tests.worker.handlers:slow"]) == 2
    assert "cannot list activities" in capsys.readouterr().err


def spawn_worker(url: str, handler: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "stepflow", "worker", "--activity", "jobs", handler]
    command += ["--endpoint-url", url, "--concurrency", "1", "--heartbeat", "0.2"]
    return subprocess.Popen(
        command, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.parametrize("heartbeat", [True, False])
def test_a_worker_killed_mid_task_loses_nothing(heartbeat: bool) -> None:
    # GIVEN a worker process holding a task
    task = {"HeartbeatSeconds": 10} if heartbeat else {}
    h = Harness(task_machine(activity("jobs"), **task), lease_seconds=60)
    h.service.create_activity({"name": "jobs"})
    arn = h.start({"n": 1})
    with SfnServer(h.service) as server:
        process = spawn_worker(server.url, "tests.worker.handlers:hang")
        try:
            deadline = time.monotonic() + 60
            while started(h, [arn]) < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert started(h, [arn]) == 1
        finally:
            # WHEN it is killed (no chance to release anything)
            process.kill()
            process.communicate(timeout=30)
    if heartbeat:
        # THEN the heartbeat check fails the task within the window (virtual clock)
        h.advance(9)
        assert h.status(arn) == "RUNNING"
        h.advance(1)
        [timed_out] = [e for e in h.history(arn) if e["type"] == "ActivityTimedOut"]
        assert timed_out["activityTimedOutEventDetails"]["error"] == "States.HeartbeatTimeout"
        assert h.status(arn) == "SUCCEEDED"  # caught into the Pass state
        return
    # THEN, without HeartbeatSeconds, the task goes to another worker once the lease runs out
    assert h.poll("jobs", "rescuer") == {}
    h.advance(60)
    rescued = h.poll("jobs", "rescuer")
    assert json.loads(rescued["input"]) == {"n": 1}
    h.service.send_task_success({"taskToken": rescued["taskToken"], "output": '"rescued"'})
    assert h.output(arn) == "rescued"
    assert h.types(arn).count("ActivitySucceeded") == 1
