"""``stepflow worker`` processes and SIGTERM: no handler starts after it, nothing runs twice.

Handlers append ``<time> <n> <pid>`` to a file as they start, so the test counts
starts per task across two worker processes. ``tools/repeat_signal_tests.sh``
runs these tests many times in a row.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.worker.harness import Harness, activity, task_machine
from tests.worker.sfn_server import SfnServer

ROOT = Path(__file__).resolve().parents[2]
WAIT = 30.0  # bound on hand-offs between processes; never reached when things work
LONG_POLL = 20.0  # long enough that the poll in flight at the signal is still waiting


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def starts(path: Path) -> list[tuple[float, int, int]]:
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines() if line]
    return [(float(at), int(n), int(pid)) for at, n, pid in rows]


def logs(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.startswith("{")]


def spawn(url: str, tmp: Path, name: str, grace: float = 30) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "stepflow", "worker", "--activity", "jobs"]
    command += ["tests.worker.handlers:recorded", "--endpoint-url", url, "--name", name]
    command += ["--concurrency", "3", "--heartbeat", "0.5", "--grace", str(grace)]
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "STEPFLOW_TEST_STARTS": str(tmp / "starts"),
    }
    with open(tmp / f"{name}.log", "w") as err:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True
        )


def test_sigterm_with_a_poll_in_flight_runs_nothing_new_and_loses_nothing(tmp_path: Path) -> None:
    # GIVEN a worker with 3 slots: 2 slow tasks in hand, the third slot in a long poll
    h = Harness(task_machine(activity("jobs")), lease_seconds=600)
    h.service.create_activity({"name": "jobs"})
    arns = [h.start({"n": n, "seconds": 1.5}) for n in range(2)]
    with SfnServer(h.service, poll_seconds=LONG_POLL) as server:
        first = spawn(server.url, tmp_path, "first")
        second = None
        try:
            until(lambda: len(starts(tmp_path / "starts")) == 2 and server.waiting >= 1, "2 starts")
            # WHEN it gets SIGTERM, and 3 more tasks are queued once it has taken note
            signalled, clock = time.time(), time.monotonic()
            first.send_signal(signal.SIGTERM)
            until(
                lambda: "worker stopping" in {e["message"] for e in logs(tmp_path / "first.log")},
                "the worker to take note",
            )
            with server.lock:
                arns += [h.start({"n": n, "seconds": 0.2}) for n in range(2, 5)]
            # THEN it exits 0: the 2 in hand finished, the task the poll brought went back
            assert first.wait(timeout=WAIT) == 0
            print(f"stepflow worker exited {time.monotonic() - clock:.2f} s after the signal")
            entries = logs(tmp_path / "first.log")
            [stopped] = [e for e in entries if e["message"] == "worker stopped"]
            assert [s for s in starts(tmp_path / "starts") if s[0] > signalled] == []
            counts = {k: stopped.get(k) for k in ("succeeded", "returned", "released", "abandoned")}
            assert counts == {"succeeded": 2, "returned": 1, "released": 0, "abandoned": 0}
            # AND a second worker gets the other 3 at once (released: no lease to wait out)
            second = spawn(server.url, tmp_path, "second")
            server.poll_seconds = 0.5
            until(lambda: len(starts(tmp_path / "starts")) == 5, "the second worker's starts")

            def done() -> bool:
                with server.lock:
                    return all(h.status(arn) == "SUCCEEDED" for arn in arns)

            until(done, "every execution to succeed")
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=WAIT) == 0
        finally:
            for process in (first, second):
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait()
    # every task ran exactly once and completed exactly once
    rows = starts(tmp_path / "starts")
    assert Counter(n for _, n, _ in rows) == {n: 1 for n in range(5)}
    assert {pid for _, n, pid in rows if n >= 2} == {second.pid}
    for arn in arns:
        assert h.types(arn).count("ActivitySucceeded") == 1


def test_a_handler_stuck_past_the_grace_period_does_not_hold_the_exit(tmp_path: Path) -> None:
    # GIVEN a worker whose handler never returns, with a grace period of 1 s
    h = Harness(task_machine(activity("jobs")), lease_seconds=600)
    h.service.create_activity({"name": "jobs"})
    arn = h.start({"n": 1, "seconds": 3600})
    with SfnServer(h.service) as server:
        worker = spawn(server.url, tmp_path, "stuck", grace=1)
        try:
            until(lambda: len(starts(tmp_path / "starts")) == 1, "the handler to start")
            # WHEN it gets SIGTERM
            worker.send_signal(signal.SIGTERM)
            # THEN it exits 0 after the grace period, the task released, the thread left behind
            assert worker.wait(timeout=WAIT) == 0
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        [stopped] = [e for e in logs(tmp_path / "stuck.log") if e["message"] == "worker stopped"]
        assert (stopped["released"], stopped["abandoned"], stopped["succeeded"]) == (1, 1, 0)
        # AND the next poll gets the task at once (the virtual clock has not moved)
        with server.lock:
            task = h.poll("jobs", "next")
            h.service.send_task_success({"taskToken": task["taskToken"], "output": '"rescued"'})
            assert h.output(arn) == "rescued"
            assert h.types(arn).count("ActivitySucceeded") == 1
