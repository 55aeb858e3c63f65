"""``stepflow local`` is quiet by default: its banner, then only warnings and errors.

An idle stack used to print about 500 lines a minute (moto's access log for the
pollers' requests, the functions' JSON logs, metrics). Counted here on a real
process: idle, then after five executions through boto3, with and without ``-v``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"
WAIT = 60.0  # bounds a hang only
BANNER_LINES = 7  # the stable first line, the console, two client hints, the host-prefix
# setting (two lines), "Ctrl-C stops it."
PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}


class Local:
    """A ``stepflow local`` process whose stdout and stderr lines are collected apart."""

    def __init__(self, *args: str) -> None:
        command = [sys.executable, "-m", "stepflow", "local", "--port", "0", *args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [
            threading.Thread(target=self._pump, args=(stream, into), daemon=True)
            for stream, into in ((self.process.stdout, self.out), (self.process.stderr, self.err))
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _pump(stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line.rstrip("\n"))

    def url(self) -> str:
        deadline = time.monotonic() + WAIT
        while not self.out or not self.out[0].startswith("StepFlow local stack:"):
            assert self.process.poll() is None, self.err
            assert time.monotonic() < deadline, (self.out, self.err)
            time.sleep(0.05)
        return self.out[0].split()[3]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(WAIT)
        for reader in self.readers:
            reader.join(WAIT)
        return code


def five_executions(url: str) -> int:
    """Runs five executions to the end; the number of API requests it made."""
    sfn = boto3.client(
        "stepfunctions",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    machine = sfn.create_state_machine(name="quiet", definition=json.dumps(PASS), roleArn=ROLE)
    arns = [
        sfn.start_execution(stateMachineArn=machine["stateMachineArn"])["executionArn"]
        for _ in range(5)
    ]
    requests = 1 + len(arns)
    for arn in arns:
        deadline = time.monotonic() + WAIT
        while True:
            requests += 1
            if sfn.describe_execution(executionArn=arn)["status"] == "SUCCEEDED":
                break
            assert time.monotonic() < deadline, arn
            time.sleep(0.1)
    return requests


@pytest.mark.parametrize("verbose", [False, True])
def test_an_idle_then_busy_stack_prints_its_banner_and_with_v_one_log_line_per_request(
    verbose: bool,
) -> None:
    local = Local(*(["-v"] if verbose else []))
    try:
        url = local.url()
        time.sleep(1.0)  # idle: the pollers long-poll moto many times a second
        idle_out, idle_err = list(local.out), list(local.err)
        requests = five_executions(url)
        time.sleep(0.5)  # lines the last requests print reach the pipes
    finally:
        code = local.stop()
    assert code == 0
    assert local.out[0].startswith("StepFlow local stack: http://127.0.0.1:")
    assert "(AWS services: http://127.0.0.1:" in local.out[0]
    assert (len(idle_out), idle_err) == (BANNER_LINES, [])
    assert local.err == ["SIGTERM: stopping the local stack"]  # no access log, no warning
    logs = [json.loads(line) for line in local.out[BANNER_LINES:]]
    if not verbose:
        assert logs == []
        return
    # -v: the API's log line per request, once each; no metrics, no access log
    assert [log["service"] for log in logs] == ["stepflow-api"] * requests
    assert all("_aws" not in log for log in logs)
