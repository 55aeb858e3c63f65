"""Mocks and virtual time on the durable path: ``execute(..., durable=True)``, the DynamoDB
log on moto with every message through the stepper Lambda handler, as in memory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from stepflow.testing import Delay, execute

pytest.importorskip("moto")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mocks"
DEFINITION = json.loads((EXAMPLES / "order_flow.asl.json").read_text())


def test_the_retry_path_runs_the_same_on_the_durable_log() -> None:
    runs = [
        execute(
            DEFINITION,
            {"orderId": 7},
            mock_config=EXAMPLES / "MockConfigFile.json",
            test_case="RetryPath",
            durable=durable,
        )
        for durable in (False, True)
    ]
    assert runs[0].status == runs[1].status == "SUCCEEDED"
    assert runs[0].result == runs[1].result
    assert [e["type"] for e in runs[0].history] == [e["type"] for e in runs[1].history]


def test_a_delayed_handler_is_called_once_and_times_out_on_the_durable_log() -> None:
    calls: list[Any] = []

    def slow(payload: Any) -> Any:
        calls.append(payload)
        return Delay(300, {"late": True})

    work = {
        "StartAt": "W",
        "States": {
            "W": {
                "Type": "Task",
                "TimeoutSeconds": 60,
                "End": True,
                "Resource": "arn:aws:lambda:us-east-1:123456789012:function:w",
            }
        },
    }
    result = execute(work, {}, handlers={"w": slow}, durable=True)
    assert (result.status, result.error, len(calls)) == ("FAILED", "States.Timeout", 1)
