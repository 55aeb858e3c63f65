"""``stepflow local`` with hostile definitions: nothing freezes the process.

A catastrophic ``StringMatches`` glob and a catastrophic ``$match`` regex used
to hold the GIL for minutes (Python's backtracking ``re``), freezing the API
and the pollers together and making the process deaf to SIGTERM. Through
boto3: the hostile executions and a huge ``$map`` and a runaway recursion are
started together with a normal one; the normal one finishes, the API keeps
answering, each hostile one ends with its own error, and SIGTERM still ends
the process within its bound. No timing is asserted beyond generous timeouts.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import boto3
from stepflow.local import free_port

from tests.e2e.test_local_signals import EXIT_BOUND, ROLE, lines, refused, spawn, until

GLOB = {
    "StartAt": "Pick",
    "States": {
        "Pick": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.s", "StringMatches": "*a" * 12 + "*b", "Next": "Done"},
            ],
        },
        "Done": {"Type": "Succeed"},
    },
}


def _jsonata(expression: str) -> dict[str, Any]:
    return {
        "QueryLanguage": "JSONata",
        "StartAt": "Work",
        "States": {"Work": {"Type": "Pass", "Output": "{% " + expression + " %}", "End": True}},
    }


HOSTILE = {
    "glob": (GLOB, {"s": "a" * 40}, "States.NoChoiceMatched", "No Matches!"),
    "regex": (
        _jsonata("$match($states.input.s, /^(a+)+$/)"),
        {"s": "a" * 40 + "!"},
        "States.QueryEvaluationError",
        "returned nothing (undefined)",
    ),
    "map": (
        _jsonata("$count($map([1..10000000], function($v){$v * 2}))"),
        {},
        "States.QueryEvaluationError",
        "expression budget of 1 s exceeded",
    ),
    "recursion": (
        _jsonata("($f := function($x){$f($x + 1)}; $f(0))"),
        {},
        "States.QueryEvaluationError",
        "expression budget of 1 s exceeded",
    ),
}
NORMAL = {
    "StartAt": "A",
    "States": {
        "A": {"Type": "Pass", "Result": {"ok": True}, "Next": "B"},
        "B": {"Type": "Succeed"},
    },
}


def test_hostile_evaluation_never_freezes_the_local_stack(tmp_path: Path) -> None:
    port = free_port()
    output = tmp_path / "output"
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

        def create(name: str, definition: dict[str, Any]) -> str:
            arn: str = sfn.create_state_machine(
                name=name, definition=json.dumps(definition), roleArn=ROLE
            )["stateMachineArn"]
            return arn

        machines = {name: create(name, spec[0]) for name, spec in HOSTILE.items()}
        normal_machine = create("normal", NORMAL)
        # WHEN the hostile executions and a normal one are started together
        runs = {
            name: sfn.start_execution(stateMachineArn=machines[name], input=json.dumps(spec[1]))[
                "executionArn"
            ]
            for name, spec in HOSTILE.items()
        }
        normal = sfn.start_execution(stateMachineArn=normal_machine, input="{}")["executionArn"]

        def status(arn: str) -> str:
            return str(sfn.describe_execution(executionArn=arn)["status"])

        # THEN the API keeps answering while they run
        listed = sfn.list_executions(stateMachineArn=machines["map"])["executions"]
        assert [e["executionArn"] for e in listed] == [runs["map"]]
        # AND the normal execution succeeds
        until(lambda: status(normal) == "SUCCEEDED", "the normal execution")
        # AND each hostile execution fails with its own error
        for name, (_, _, error, cause) in HOSTILE.items():
            until(lambda arn=runs[name]: status(arn) != "RUNNING", f"the {name} execution")
            described = sfn.describe_execution(executionArn=runs[name])
            assert described["status"] == "FAILED", (name, described)
            assert described["error"] == error, (name, described)
            assert cause in described["cause"], (name, described["cause"])
        # AND SIGTERM still ends the process, within its documented bound
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=EXIT_BOUND) == 0, "\n".join(lines(output)[-20:])
        print(f"stepflow local exited {time.monotonic() - signalled:.2f} s after SIGTERM")
        assert refused(port)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
