"""The order example end to end through ``stepflow local --endpoint <LocalStack>``.

A module of its own: the stack of ``test_on_localstack.py`` polls the same queues
with another signing key, so it would take (and drop as forged) this process's
messages; pytest stops that module's stack before this module runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ENDPOINT = os.environ.get("LOCALSTACK_ENDPOINT")
DYNAMODB_ENDPOINT = os.environ.get("LOCALSTACK_DYNAMODB_ENDPOINT") or None
pytestmark = pytest.mark.skipif(
    not ENDPOINT, reason="set LOCALSTACK_ENDPOINT (e.g. http://localhost:4566) to run these"
)
ROOT = Path(__file__).resolve().parents[2]


def test_the_order_demo_succeeds_through_stepflow_local_endpoint() -> None:
    assert ENDPOINT is not None
    command = [
        sys.executable, "-m", "stepflow", "local", "--port", "0", "--endpoint", ENDPOINT,
        "--demo", str(ROOT / "examples" / "order.asl.json"),
        "--input", "@" + str(ROOT / "examples" / "order.local-input.json"),
        "--handlers", str(ROOT / "examples" / "order_handlers.py"),
    ]  # fmt: skip
    if DYNAMODB_ENDPOINT:
        command += ["--dynamodb-endpoint", DYNAMODB_ENDPOINT]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "SUCCEEDED" in done.stdout, done.stdout[-2000:]
